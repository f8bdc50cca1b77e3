"""Readers of each dataset's native layout, and their Colab downloads, one module per source;
each loads on first use (``hp.datasets.rhd``). Readers never import the writers."""

import importlib


def __getattr__(name: str):
    if name in ("coco", "freihand", "ouhands", "rhd"):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
