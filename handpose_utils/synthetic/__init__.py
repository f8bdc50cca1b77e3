"""The embedded default data: procedural hands and people written in each real dataset's native
layout, one writer per dataset; each module loads on first use (``hp.synthetic.ouhands``)."""

import importlib


def __getattr__(name: str):
    if name in ("backgrounds", "coco", "freihand", "hand_model", "jobs", "ouhands", "photo",
                "render", "rhd", "scene", "style"):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
