"""How real is the renderer? MediaPipe's hand model, trained on real photos, as the judge: the
share of rendered images in which it finds a hand, and how far its keypoints land from the
renderer's labels. Cheap and repeatable on thousands of images, where real photos are few.

    python -m handpose_utils.realism                 # the plain and the course's renderer
    python -m handpose_utils.realism --ablation      # each realism switch off in turn
    python -m handpose_utils.realism --heads         # notebook 08's heads trained on each, on photos

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
                   model_path: str | Path | None = None) -> dict:
    """MediaPipe on each record's image: the share found, and the mean keypoint distance (px, over
    the found images' visible joints) of the found hand nearest to the labels."""
    found, errors, joints = 0, [], 0
    for rec in records:
        kp = np.asarray(rec["keypoints"], float).reshape(-1, 2)
        vis = np.asarray(rec["visible"], bool).reshape(-1)
        hands = detect_hands(read_image(rec["image_path"]), min_confidence=min_confidence,
                             model_path=model_path)
        joints += int(vis.sum())
        if hands:
            found += 1
        if hands and vis.any():
            errors.append(min(float(np.linalg.norm(h["keypoints"] - kp, axis=1)[vis].mean())
                              for h in hands))
    return {"images": len(records), "joints": joints, "found": found / max(len(records), 1),
            "error_px": float(np.mean(errors)) if errors else float("nan")}


def rendered_records(style: RenderStyle, n_poses: int, folder: Path, seed: int = 0) -> list[dict]:
    """``n_poses`` poses x 4 versions rendered in ``style`` as the course's dataset is (the same
    poses for every style: each pose has its own seed), read back by the FreiHAND reader."""
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
    return (f"{name:28s} {100 * r['found']:6.1f} % found of {r['images']:5d} images"
            f"   keypoint error {r['error_px']:5.1f} px ({r['joints']} visible joints)")


def ablation_styles() -> dict[str, RenderStyle]:
    """The course's renderer, then each scene and camera switch off in turn, then the hand's."""
    styles = {"all on": RenderStyle()}
    for name in (*SCENE_SWITCHES, "shadows", "skin", "flesh", "viewpoints", "poses"):
        styles[f"without {name}"] = RenderStyle.without(name)
    styles["hand only (no scene, camera)"] = RenderStyle.without(*SCENE_SWITCHES)
    styles["plain (the first renderer)"] = RenderStyle.plain()
    return styles


def heads(notebook: Path, timeout_s: int = 7200) -> dict:
    """Notebook 08 in its default mode, which trains its three heads on both renderers at the same
    settings and scores them on the real photos: its renderer comparison (``renderers.json``)."""
    import nbformat
    from nbclient import NotebookClient

    from .env import runs_dir

    nb = nbformat.read(notebook, as_version=4)
    NotebookClient(nb, timeout=timeout_s, kernel_name="python3",
                   resources={"metadata": {"path": str(notebook.parent)}}).execute()
    return json.loads((runs_dir() / "08_real_hands" / "renderers.json").read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handpose_utils.realism", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--poses", type=int, default=250, help="poses per style (x4 images)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ablation", action="store_true", help="each realism switch off in turn")
    parser.add_argument("--heads", action="store_true",
                        help="run notebook 08 (default mode, about 15 CPU minutes) and print its "
                             "heads' real-photo scores after training on each renderer")
    parser.add_argument("--out", type=Path, help="write every figure to this JSON file")
    args = parser.parse_args(argv)
    if args.poses < 1:
        parser.error("--poses must be at least 1")
    styles = ablation_styles() if args.ablation else {
        "plain (the first renderer)": RenderStyle.plain(), "the course's renderer": RenderStyle()}
    print(f"MediaPipe (bundled models, confidence 0.5) on {args.poses} poses x 4 versions per style")
    out = {"poses": args.poses, "seed": args.seed, "detection": measure(styles, args.poses, args.seed)}
    if args.heads:
        notebook = Path(__file__).resolve().parents[1] / "notebooks" / "08_real_hands_capstone.ipynb"
        out["heads"] = heads(notebook)
        print(json.dumps(out["heads"], indent=1))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
