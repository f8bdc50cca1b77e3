"""OUHANDS (Oulu University HANDS): the native layout (Matilainen et al., "OUHANDS database for
hand detection and pose recognition", IPTA 2016), and hand-landmark files in the reference
project's format::

    OUHANDS_train/
      train/hand_data/colour/{CLASS}-{subject}-{NNNN}.png     2,000 images, 640 x 480
      train/hand_data/{depth,segmentation,bounding_box,orientation}/   (not used here)
      data_split_for_intermediate_tests/training_files.txt      1,600 names
      data_split_for_intermediate_tests/validation_files.txt      400 names
    OUHANDS_test/
      test/hand_data/colour/*.png                              1,000 images

    landmarks/{train,validation,test}/<stem>_landmarks.json   one per image with a hand:
    {"image_path": "../../OUHANDS_train/train/hand_data/colour/A-ima-0001.png",
     "image_shape": [480, 640, 3],
     "landmarks": [{"x": 0.51, "y": 0.32, "z": -0.04}, ...],   # exactly 21, HAND21 order
     "handedness": {"label": "Right", "score": 0.97}}           # or null
    landmarks/extraction_report.json     images seen, hands found, images without a hand

Ten hand-pose classes, A-F and H-K; ``subject`` is a three-letter person id, ``NNNN`` the sample
number. OUHANDS has boxes and masks but **no keypoints**: the landmarks come from a teacher,
MediaPipe's Hand Landmarker (:mod:`handpose_utils.mediapipe_labels`), or the synthetic default's
renderer. ``x`` and ``y`` are normalised by the image width and height; ``z`` is the depth
relative to the wrist, on about the scale of ``x`` (negative = closer to the camera).
``image_path`` is relative to the landmark file, so the data folder can move; the reference's,
relative to its project root, reads with ``read_landmark_file(..., image_root=<that root>)``."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

from ..downloads import BrokenArchiveError, extract_zip
from ..safefiles import write_json
from ..skeletons import NUM_HAND_JOINTS
from .freihand import DatasetNotFoundError, check_extracted, find_root, read_dataset_json

OUHANDS_PAGE = "https://www.oulu.fi/cmvs/node/41445"
OUHANDS_CLASSES = ("A", "B", "C", "D", "E", "F", "H", "I", "J", "K")
OUHANDS_IMAGE_SIZE = (640, 480)  # (width, height); landmark files write (H, W, C)
SPLITS = ("train", "validation", "test")
SPLIT_LISTS = {"train": "training_files.txt", "validation": "validation_files.txt"}
HANDEDNESS_LABELS = ("Left", "Right")
LANDMARK_SUFFIX = "_landmarks.json"
REPORT_NAME = "extraction_report.json"

_NAME = re.compile(r"^([A-Z])-([A-Za-z0-9]+)-(\d+)$")

HOW_TO_GET_OUHANDS = (
    "OUHANDS has no public direct-download URL that code can fetch: get it from the University "
    "of Oulu's page " + OUHANDS_PAGE + " (follow its instructions and accept its terms of "
    "use), put the archives on your Drive or upload them, then call "
    "handpose_utils.install_ouhands([archives], root). Or use the synthetic default: "
    "handpose_utils.synthetic.ouhands.ensure_synthetic_ouhands(root).")


class LandmarkFileError(ValueError):
    """A landmark file is malformed. The message names the file and what is wrong."""


# The native layout ----------
def parse_ouhands_name(name: str | Path) -> dict:
    """``"A-ima-0001.png"`` -> ``{"class": "A", "subject": "ima", "number": 1}``. Raises
    ``ValueError`` for a name that does not follow ``{CLASS}-{subject}-{NNNN}``."""
    match = _NAME.match(Path(name).stem)
    if not match or match.group(1) not in OUHANDS_CLASSES:
        raise ValueError(
            f"{name!r} is not an OUHANDS image name: expected {{CLASS}}-{{subject}}-{{NNNN}}.png "
            f"with CLASS in {''.join(OUHANDS_CLASSES)}, e.g. A-ima-0001.png")
    return {"class": match.group(1), "subject": match.group(2), "number": int(match.group(3))}


def find_ouhands_root(root: str | Path) -> Path:
    """``root`` itself or a sub-folder (``OUHANDS``, ``dataset``) holding ``OUHANDS_train``."""
    return find_root(root, ["OUHANDS", "dataset"], ["OUHANDS_train", "OUHANDS_test"])


def ouhands_colour_dir(root: str | Path, split: str) -> Path:
    """The colour-image folder of a split (train and validation share one folder)."""
    _check_split(split)
    folder = "test" if split == "test" else "train"
    return find_ouhands_root(root) / f"OUHANDS_{folder}" / folder / "hand_data" / "colour"


def split_list_path(root: str | Path, split: str) -> Path:
    if split not in SPLIT_LISTS:
        raise ValueError(f"only train and validation have list files, not {split!r}")
    return (find_ouhands_root(root) / "OUHANDS_train" / "data_split_for_intermediate_tests"
            / SPLIT_LISTS[split])


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def read_split_list(root: str | Path, split: str) -> list[str]:
    """The image names listed in ``training_files.txt`` / ``validation_files.txt`` (one a
    line; blank lines ignored; a folder prefix on a line is dropped)."""
    path = split_list_path(root, split)
    if not path.is_file():
        raise DatasetNotFoundError(f"OUHANDS split list not found: {path}. " + HOW_TO_GET_OUHANDS)
    names = [Path(line.strip()).name for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise ValueError(f"{path} lists no images; the file is empty or truncated")
    return names


def list_ouhands_images(root: str | Path, split: str, check: bool = True) -> list[Path]:
    """Colour images of a split, sorted by name: ``train`` and ``validation`` as listed in the
    intermediate-test split files, ``test`` every PNG of the test folder. With ``check``, every
    listed image must exist (a missing one raises :class:`DatasetNotFoundError` naming it)."""
    colour = ouhands_colour_dir(root, split)
    if not colour.is_dir():
        raise DatasetNotFoundError(f"OUHANDS image folder not found: {colour}. "
                                   + HOW_TO_GET_OUHANDS)
    if split == "test":
        if not (paths := sorted(colour.glob("*.png"))):
            raise DatasetNotFoundError(f"no PNG images in {colour}. " + HOW_TO_GET_OUHANDS)
        return paths
    paths = [colour / name for name in sorted(read_split_list(root, split))]
    if check and (missing := [p for p in paths if not p.is_file()]):
        raise DatasetNotFoundError(
            f"{len(missing)} image(s) listed in {split_list_path(root, split)} are missing "
            f"from {colour}, e.g. {missing[0].name}. Re-extract the dataset.")
    return paths


def load_ouhands(root: str | Path, split: str) -> list[dict]:
    """One record per image of a split: ``image_path``, ``class``, ``subject``, ``number``,
    ``split``. Names that do not parse raise ``ValueError`` naming the file."""
    records = []
    for path in list_ouhands_images(root, split):
        try:
            info = parse_ouhands_name(path.name)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err
        records.append({"image_path": str(path), "split": split, **info})
    return records


def install_ouhands(archives, root: str | Path) -> Path:
    """Extract the OUHANDS zip archives you downloaded by hand from its page (``OUHANDS_PAGE``,
    under its terms; whatever their names) into ``root``, best the runtime's local disk
    (``/content/data``), check the layout and return the folder holding ``OUHANDS_train``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for archive in [archives] if isinstance(archives, (str, Path)) else archives:
        archive = Path(archive)
        if not archive.is_file():
            raise DatasetNotFoundError(f"archive not found: {archive}. " + HOW_TO_GET_OUHANDS)
        try:
            extract_zip(archive, root)
        except BrokenArchiveError as err:
            raise DatasetNotFoundError(str(err)) from err
    # Some archives wrap everything in one extra folder: look one level deeper too.
    candidates = [find_ouhands_root(d) for d in (root, *root.iterdir()) if d.is_dir()]
    found = next((c for c in candidates if (c / "OUHANDS_train").is_dir()), candidates[0])
    return check_extracted(found, [ouhands_colour_dir(found, "train"),
                                   split_list_path(found, "train"),
                                   split_list_path(found, "validation")], ". " + HOW_TO_GET_OUHANDS)


# Landmark files ----------
def landmark_file_path(landmarks_dir: str | Path, split: str, image_path: str | Path) -> Path:
    """``landmarks/<split>/<stem>_landmarks.json`` for an image."""
    _check_split(split)
    return Path(landmarks_dir) / split / f"{Path(image_path).stem}{LANDMARK_SUFFIX}"


def landmark_record(image_path: str | Path, image_shape, landmarks, handedness=None) -> dict:
    """A landmark file's content, validated. ``landmarks`` is ``(21, 3)`` (x, y, z) or a list
    of 21 ``{"x", "y", "z"}`` dicts; ``handedness`` is None or ``{"label", "score"}``."""
    points = []
    for lm in landmarks:
        x, y, z = (lm["x"], lm["y"], lm["z"]) if isinstance(lm, dict) else lm
        points.append({"x": float(x), "y": float(y), "z": float(z)})
    record = {"image_path": str(image_path), "image_shape": [int(v) for v in image_shape],
              "landmarks": points, "handedness": None if handedness is None else {
                  "label": str(handedness["label"]), "score": float(handedness["score"])}}
    validate_landmark_record(record, source=str(image_path))
    return record


def validate_landmark_record(record: dict, source: str = "landmark record") -> None:
    """Raise :class:`LandmarkFileError` naming ``source`` unless ``record`` is well formed:
    keys present, ``image_shape`` (H, W, C), **exactly 21** finite landmarks with x, y, z,
    handedness null or ``{"label": "Left"|"Right", "score": 0..1}``."""
    if not isinstance(record, dict):
        raise LandmarkFileError(f"{source}: expected a JSON object, got {type(record).__name__}")
    if missing := [k for k in ("image_path", "image_shape", "landmarks") if k not in record]:
        raise LandmarkFileError(f"{source}: missing key(s) {missing}. Re-create it with "
                                "write_landmark_file or label_ouhands.")
    shape = record["image_shape"]
    if not (isinstance(shape, (list, tuple)) and len(shape) == 3
            and all(isinstance(v, int) and v > 0 for v in shape)):
        raise LandmarkFileError(f"{source}: 'image_shape' must be [height, width, channels], "
                                f"got {shape!r}")
    lms = record["landmarks"]
    if not isinstance(lms, list) or len(lms) != NUM_HAND_JOINTS:
        n = len(lms) if isinstance(lms, list) else type(lms).__name__
        raise LandmarkFileError(
            f"{source}: {n} landmarks, expected exactly {NUM_HAND_JOINTS} (MediaPipe's hand "
            "model). The file is truncated or from another model: re-run the labelling.")
    for i, lm in enumerate(lms):
        if not isinstance(lm, dict) or any(k not in lm for k in "xyz"):
            raise LandmarkFileError(f"{source}: landmark {i} must be {{'x', 'y', 'z'}}, got {lm!r}")
        try:
            ok = all(math.isfinite(float(lm[k])) for k in "xyz")
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise LandmarkFileError(f"{source}: landmark {i} has a non-finite or non-numeric "
                                    f"value {lm!r}")
    if (hand := record.get("handedness")) is not None:
        if not isinstance(hand, dict) or hand.get("label") not in HANDEDNESS_LABELS:
            raise LandmarkFileError(f"{source}: 'handedness' must be null or "
                                    f"{{'label': 'Left'|'Right', 'score': ...}}, got {hand!r}")
        score = hand.get("score")
        if not isinstance(score, (int, float)) or not 0.0 <= float(score) <= 1.0:
            raise LandmarkFileError(f"{source}: handedness score must be in [0, 1], got {score!r}")


def write_landmark_file(path: str | Path, image_path: str | Path, image_shape, landmarks,
                        handedness=None, relative: bool = True) -> Path:
    """Write one landmark file atomically. With ``relative`` (default) ``image_path`` is stored
    relative to the file's folder, so the data folder can be moved as a whole."""
    path = Path(path)
    stored = Path(image_path)
    if relative and stored.is_absolute():
        try:
            stored = Path(os.path.relpath(stored, path.parent.resolve()))
        except ValueError:  # another drive (Windows): keep it absolute
            pass
    record = landmark_record(stored.as_posix(), image_shape, landmarks, handedness)
    return write_json(path, record, indent=1)


def read_landmark_file(path: str | Path, image_root: str | Path | None = None,
                       check_image: bool = True) -> dict:
    """Read and validate one landmark file: its content with ``image_path`` made absolute (against
    ``image_root`` if given, else the file's folder) and ``landmark_file`` added. Raises
    :class:`LandmarkFileError` naming the file when it is not valid JSON, has other than 21
    landmarks, a bad value, or (with ``check_image``) points to a missing image."""
    path = Path(path)
    try:
        with open(path) as f:
            record = json.load(f)
    except FileNotFoundError as err:
        raise DatasetNotFoundError(f"landmark file not found: {path}") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise LandmarkFileError(f"{path}: not valid JSON ({err}). Delete it and re-run the "
                                "labelling for this image.") from err
    validate_landmark_record(record, source=str(path))
    base = Path(image_root) if image_root is not None else path.parent
    img = Path(os.path.normpath((base / record["image_path"]).absolute()))  # absolute: kept
    if check_image and not img.is_file():
        hint = ("pass image_root=<the folder its image_path is relative to>"
                if image_root is None else "check image_root")
        raise LandmarkFileError(
            f"{path}: its image {record['image_path']!r} was not found (looked at {img}); "
            f"{hint}, or re-create the landmark files.")
    return {**record, "image_path": str(img), "landmark_file": str(path)}


def list_landmark_files(landmarks_dir: str | Path, split: str) -> list[Path]:
    """The ``*_landmarks.json`` files of a split, sorted by name."""
    _check_split(split)
    folder = Path(landmarks_dir) / split
    if not folder.is_dir():
        raise DatasetNotFoundError(
            f"landmark folder not found: {folder}. Make the landmark files first: "
            "handpose_utils.synthetic.ouhands.ensure_synthetic_ouhands(root) writes them for the "
            "synthetic data, handpose_utils.mediapipe_labels.label_ouhands(...) with MediaPipe "
            "for real OUHANDS.")
    return sorted(folder.glob(f"*{LANDMARK_SUFFIX}"))


def load_landmark_files(landmarks_dir: str | Path, split: str,
                        image_root: str | Path | None = None, limit: int | None = None,
                        check_images: bool = True) -> list[dict]:
    """Read and validate every landmark file of a split (sorted by name; the first ``limit``
    only if given). Every file must be valid: a bad one raises naming the file."""
    files = list_landmark_files(landmarks_dir, split)
    if not files:
        raise DatasetNotFoundError(f"no *{LANDMARK_SUFFIX} files in {Path(landmarks_dir) / split}")
    return [read_landmark_file(p, image_root, check_images) for p in files[:limit]]


def write_extraction_report(landmarks_dir: str | Path, report: dict) -> Path:
    """Write ``landmarks/extraction_report.json`` (atomically)."""
    return write_json(Path(landmarks_dir) / REPORT_NAME, report, indent=1)


def read_extraction_report(landmarks_dir: str | Path) -> dict:
    return read_dataset_json(Path(landmarks_dir) / REPORT_NAME, "extraction report")


def summarize_report(report: dict) -> str:
    """Readable lines: per split, images seen, hands found and the first images without a hand."""
    lines = [f"teacher: {report.get('teacher', '?')}"]
    for split, stats in report.get("splits", {}).items():
        missing = stats.get("no_hand", [])
        line = (f"  {split:10s} {stats.get('images_seen', 0):5d} images, "
                f"{stats.get('hands_found', 0):5d} hands found, {len(missing)} without a hand")
        if missing:
            line += ": " + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        lines.append(line)
    return "\n".join(lines)

