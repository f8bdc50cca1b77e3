"""Synthetic hands written in OUHANDS' native layout (:mod:`handpose_utils.datasets.ouhands`),
with landmark files in MediaPipe's format (the "teacher" labels: the renderer's ground truth in
MediaPipe's normalisation, :func:`mediapipe_landmarks`; handedness the subject's true hand with
score 1.0; images not mirrored) and ``synthetic_meta.json`` written last.

Each OUHANDS class is drawn as one of the renderer's gestures (:data:`CLASS_GESTURES`; the mapping
is ours, not OUHANDS'). A *subject* is one synthetic person with a fixed hand shape, skin tone and
hand side (a quarter are left-handed), so a subject's images share a hand, like a real person's;
the split lists hold whole subjects, the test folder other subjects. Every image gets its own
camera, pose variation, orientation (mostly palm towards the camera, upright), placement, lighting
and background, from seeds ``(seed, split, subject, class, sample)``: reproducible bit for bit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..camera import project
from ..datasets.ouhands import (
    OUHANDS_CLASSES,
    OUHANDS_IMAGE_SIZE,
    SPLIT_LISTS,
    landmark_file_path,
    ouhands_colour_dir,
    split_list_path,
    write_extraction_report,
    write_landmark_file,
)
from .backgrounds import scene_background
from .hand_model import HandShape, gesture_pose, hand_to_camera, sample_shape
from .jobs import ensure_dataset, run_jobs, stamp_dataset, start_dataset
from .render import Skin, sample_skin
from .scene import HandSpec, composite, place_hand, render_hands, sample_camera
from .style import RenderStyle, as_style

OUHANDS_GENERATOR_VERSION = 6
WIDTH, HEIGHT = OUHANDS_IMAGE_SIZE

# OUHANDS class -> renderer gesture (synthetic/hand_model.GESTURES). Ten distinct gestures.
CLASS_GESTURES = {"A": "open", "B": "fist", "C": "point", "D": "peace", "E": "three", "F": "four",
                  "H": "thumbs_up", "I": "call", "J": "rock", "K": "ok"}
LEFT_HANDED_FRACTION = 0.25
_SPLIT_CODE = {"train": 0, "test": 1}


@dataclass
class Subject:
    """One synthetic person: a three-letter id, a hand and the side they gesture with."""

    id: str
    shape: HandShape
    skin: Skin
    side: str  # "right" or "left"


def subject_ids(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct three-letter ids like OUHANDS' (``"ima"``, ``"jha"``), reproducible."""
    rng = np.random.default_rng([seed, 99])
    ids: list[str] = []
    while len(ids) < n:
        sid = "".join(chr(ord("a") + i) for i in rng.integers(0, 26, 3))
        if sid not in ids:
            ids.append(sid)
    return ids


def make_subject(seed: int, index: int, sid: str, style: RenderStyle | None = None) -> Subject:
    """Subject ``index``: a random hand and skin (and sleeve, as ``style.sleeves`` says; None is the
    default style, as in :func:`make_ouhands`); every fourth subject (index 1, 5, 9, ...) is
    left-handed, so every split of a few subjects has both hands."""
    rng = np.random.default_rng([seed, 7, index])
    side = "left" if index % round(1 / LEFT_HANDED_FRACTION) == 1 else "right"
    return Subject(sid, sample_shape(rng), sample_skin(rng, clothes=as_style(style).sleeves), side)


def pick_validation_subjects(subjects: list[Subject], n_val: int, seed: int) -> set[int]:
    """``n_val`` subject indices for validation, at random but stratified by hand side: left-
    and right-handed people in proportion, and at least one of each when ``n_val >= 2``."""
    perm = np.random.default_rng([seed, 5]).permutation(len(subjects)).tolist()
    lefts = [i for i in perm if subjects[i].side == "left"]
    rights = [i for i in perm if subjects[i].side == "right"]
    n_left = round(n_val * len(lefts) / max(len(subjects), 1))
    if n_val >= 2 and lefts:
        n_left = max(n_left, 1)
    if n_val >= 2 and rights:
        n_left = min(n_left, n_val - 1)
    n_left = min(n_left, len(lefts))
    return set(lefts[:n_left] + rights[: n_val - n_left])


def mediapipe_landmarks(joints: np.ndarray, K: np.ndarray, width: int, height: int) -> np.ndarray:
    """Camera-frame joints (21, 3) in metres -> MediaPipe's normalised landmarks (21, 3):
    ``x = (u + 0.5) / W``, ``y = (v + 0.5) / H`` and ``z = (Z - Z_wrist) * fx / (Z_wrist * W)``,
    the depth offset from the wrist in the unit of x (negative = closer to the camera)."""
    joints = np.asarray(joints, float)
    z_wrist = joints[0, 2]
    return np.c_[(project(joints, K) + 0.5) / [width, height],
                 (joints[:, 2] - z_wrist) * K[0, 0] / (z_wrist * width)]


def render_ouhands_sample(seed: int, split: str, subject_index: int, subject: Subject, cls: str,
                          number: int, style: RenderStyle | None = None) -> dict:
    """Render one image: ``image`` (480, 640, 3) uint8, ``landmarks`` (21, 3) in MediaPipe's
    normalisation, ``xyz`` (metres, camera frame), ``K`` and ``handedness`` ("Left"/"Right").
    Drawn in ``style`` but without occluders: OUHANDS' labels have no visibility."""
    style = as_style(style)
    rng = np.random.default_rng(
        [seed, _SPLIT_CODE[split], subject_index, OUHANDS_CLASSES.index(cls), number])
    # a 640 x 480 RGB-D camera such as OUHANDS' (horizontal field of view about 55-65 degrees)
    K = sample_camera(rng, WIDTH, HEIGHT, focal=(0.85, 1.05), shift=0.02)
    gesture = CLASS_GESTURES[cls]
    pose = gesture_pose(gesture, rng)
    # Fingers up, palm towards the camera (the back of the hand one time in five), spun up to 50
    # degrees, tilted up to 25 and rolled up to 30.
    spin = np.deg2rad(rng.uniform(-50, 50)) + (np.pi if rng.uniform() < 0.2 else 0.0)
    rotation = hand_to_camera(spin, np.deg2rad(rng.uniform(-25, 25)),
                              np.deg2rad(rng.uniform(-30, 30)))
    spec = HandSpec(subject.shape, pose, gesture, rotation, subject.skin, subject.side, style.flesh)
    for _ in range(20):
        geometry = place_hand(spec, K, WIDTH, HEIGHT, rng, size_range=(0.3, 0.55))
        # place_hand's fit is approximate under this wide-angle camera's perspective: draw
        # another placement until every joint lies inside the image.
        uv = project(geometry.joints, K)
        if (uv >= 2).all() and (uv[:, 0] <= WIDTH - 3).all() and (uv[:, 1] <= HEIGHT - 3).all():
            break
    rendering = render_hands([geometry], [spec.skin], K, WIDTH, HEIGHT, rng, style=style)
    image = composite(rendering, scene_background(rng, HEIGHT, WIDTH, style), rng,
                      harmonize=rng.uniform(0.0, 0.2), noise=0.008, style=style)
    return {"image": image, "landmarks": mediapipe_landmarks(geometry.joints, K, WIDTH, HEIGHT),
            "xyz": geometry.joints, "K": K, "handedness": subject.side.capitalize()}


def _write_sample(args) -> str:
    root, seed, split, label_split, subject_index, subject, cls, number, style = args
    sample = render_ouhands_sample(seed, split, subject_index, subject, cls, number, style)
    name = f"{cls}-{subject.id}-{number:04d}.png"
    image_path = ouhands_colour_dir(root, "test" if split == "test" else "train") / name
    # compress_level 3: the sensor noise makes PNGs hard to compress; level 6 is 3x slower.
    Image.fromarray(sample["image"]).save(image_path, compress_level=3)
    write_landmark_file(landmark_file_path(root / "landmarks", label_split, name), image_path,
                        (HEIGHT, WIDTH, 3), np.round(sample["landmarks"], 6),
                        {"label": sample["handedness"], "score": 1.0})
    return name


def make_ouhands(root: str | Path, n_subjects: int = 20, n_test_subjects: int = 10,
                 samples_per_class: int = 10, val_fraction: float = 0.2, seed: int = 0,
                 workers: int | None = None, progress: bool = True,
                 style: RenderStyle | dict | None = None) -> Path:
    """Write a synthetic OUHANDS under ``root`` and return ``root``. ``n_subjects`` people make the
    training folder (``n_subjects * 10 * samples_per_class`` images), of whom a ``val_fraction`` go
    to ``validation_files.txt`` *as whole subjects*; ``n_test_subjects`` other people make the test
    folder. The defaults give real OUHANDS' counts: 1,600 training, 400 validation, 1,000 test.
    ``style``: how the images look (:class:`~.style.RenderStyle`; default every feature on)."""
    style = as_style(style)
    root = Path(root).absolute()  # the landmark files store image paths relative to themselves
    if n_subjects < 1 or samples_per_class < 1 or n_test_subjects < 0:
        raise ValueError("need n_subjects >= 1, samples_per_class >= 1, n_test_subjects >= 0")
    # both lists non-empty
    n_val = min(max(round(val_fraction * n_subjects), 1), n_subjects - 1) if n_subjects > 1 else 0
    ids = subject_ids(n_subjects + n_test_subjects, seed)
    subjects = [make_subject(seed, i, sid, style) for i, sid in enumerate(ids)]
    val_index = pick_validation_subjects(subjects[:n_subjects], n_val, seed)

    root, start = start_dataset(root, ouhands_colour_dir(root, "train"), ouhands_colour_dir(
        root, "test"), split_list_path(root, "train").parent)
    split_of = {s.id: "test" if i >= n_subjects else "validation" if i in val_index else "train"
                for i, s in enumerate(subjects)}
    jobs = [(root, seed, "test" if i >= n_subjects else "train", split_of[subject.id], i, subject,
             cls, number, style) for i, subject in enumerate(subjects) for cls in OUHANDS_CLASSES
            for number in range(1, samples_per_class + 1)]
    names = run_jobs(_write_sample, jobs, workers, progress, desc="rendering OUHANDS-style hands")

    by_split: dict[str, list[str]] = {"train": [], "validation": [], "test": []}
    for job, name in zip(jobs, names):
        by_split[job[3]].append(name)
    for split in SPLIT_LISTS:
        split_list_path(root, split).write_text("".join(f"{n}\n" for n in sorted(by_split[split])))
    write_extraction_report(root / "landmarks", {
        "teacher": "synthetic ground truth (the renderer's joints in MediaPipe's normalisation)",
        "image_mirrored": False, "handedness": "the subject's true hand (score 1.0)",
        "splits": {split: {"images_seen": len(v), "hands_found": len(v), "no_hand": []}
                   for split, v in by_split.items()},
        "total": {"images_seen": len(names), "hands_found": len(names), "no_hand": 0},
    })
    return stamp_dataset(root, start, __name__, OUHANDS_GENERATOR_VERSION, seed=seed,
                         n_subjects=n_subjects, n_test_subjects=n_test_subjects,
                         samples_per_class=samples_per_class, val_fraction=val_fraction,
                         style=style.as_dict(), image_size=[WIDTH, HEIGHT],
                         class_gestures=CLASS_GESTURES,
                         subjects={s.id: {"side": s.side, "split": split_of[s.id]}
                                   for s in subjects},
                         counts={k: len(v) for k, v in by_split.items()})


def ensure_synthetic_ouhands(root: str | Path, n_subjects: int = 20, n_test_subjects: int = 10,
                             samples_per_class: int = 10, val_fraction: float = 0.2, seed: int = 0,
                             progress: bool = True, style: RenderStyle | dict | None = None) -> Path:
    """``root`` holding a synthetic OUHANDS of these settings (:func:`.jobs.ensure_dataset`: the
    landmark files' image paths are relative to them, so the moved folder stays valid)."""
    return ensure_dataset(root, make_ouhands, OUHANDS_GENERATOR_VERSION, progress,
                          n_subjects=n_subjects, n_test_subjects=n_test_subjects,
                          samples_per_class=samples_per_class, val_fraction=val_fraction, seed=seed,
                          style=as_style(style).as_dict())
