"""Notebook 07's data: an RHD-layout dataset on disk, synthetic or real."""

from __future__ import annotations

from pathlib import Path

from . import _folder, _real


def prepare_rhd(dataset: str = "synthetic", data_root: str | Path | None = None,
                n_train: int = 3000, n_eval: int | None = None, image_size: int = 320,
                seed: int = 0, download: bool = False, progress: bool = True) -> Path:
    """Make sure an RHD-layout dataset is on disk and return its root: ``"synthetic"``
    (``n_train`` training and ``n_eval`` evaluation images of ``image_size`` pixels) or ``"rhd"``
    (``RHD_published_v2``), as :func:`prepare_freihand` does."""
    root = _folder(dataset, data_root, {"synthetic": "synthetic_rhd", "rhd": "RHD_published_v2"})
    if dataset == "synthetic":
        from ..synthetic.rhd import ensure_synthetic_rhd

        return ensure_synthetic_rhd(root, n_train, n_eval=n_eval, seed=seed,
                                    image_size=image_size, progress=progress)
    from ..datasets.rhd import RHD_SIZE, download_rhd

    _real(root, (root / "training" / "anno_training.pickle").is_file(), download,
          lambda: download_rhd(root.parent), "RHD (RHD_published_v2)", f"{RHD_SIZE} zip")
    return root
