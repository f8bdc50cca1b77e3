"""Keypoint records: the JSON list every notebook trains from.

A record is the reference project's dict, extended with what later notebooks need::

    {
      "image_path": "training/rgb/00000000.jpg",   # relative to the JSON file when saved
      "keypoints": [x1, y1, x2, y2, ...],          # pixels, 2 * num_joints values
      "source": "FreiHAND",
      # optional, kept when present:
      "visible": [1, 0, ...],                      # one flag per joint
      "xyz": [[x, y, z], ...],                     # metres, camera frame
      "K": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]],
      "pose_id": 17, "version": 2, "width": 224, "height": 224,
    }

``save_records`` writes image paths relative to the JSON file, so a data folder can be moved
(say, to ``/content/data`` in Colab) without rewriting it; ``load_records`` resolves them back to
absolute paths and validates every record.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from .skeletons import NUM_HAND_JOINTS


class RecordError(ValueError):
    """A record is malformed. The message names the file, the record and the fix."""


def keypoints_array(record: dict) -> np.ndarray:
    """A record's keypoints as a ``(J, 2)`` float32 array."""
    return np.asarray(record["keypoints"], dtype=np.float32).reshape(-1, 2)


def visible_array(record: dict) -> np.ndarray:
    """A record's per-joint visibility as a bool array (all True when the record has none)."""
    n = len(record["keypoints"]) // 2
    vis = record.get("visible")
    return np.ones(n, bool) if vis is None else np.asarray(vis, dtype=bool)


def validate_record(
    record: dict,
    index: int,
    source: str = "records",
    num_joints: int = NUM_HAND_JOINTS,
    check_image: bool = True,
) -> None:
    """Raise :class:`RecordError` unless ``record`` is well formed."""
    where = f"{source}, record {index}"
    if not isinstance(record, dict):
        raise RecordError(f"{where}: expected a dict, got {type(record).__name__}")
    missing = [k for k in ("image_path", "keypoints") if k not in record]
    if missing:
        raise RecordError(f"{where}: missing key(s) {missing}. Re-create the records (notebook 01).")
    where += f" ({record['image_path']})"
    kp = record["keypoints"]
    if not isinstance(kp, (list, tuple)) or len(kp) != 2 * num_joints:
        n = len(kp) if isinstance(kp, (list, tuple)) else type(kp).__name__
        raise RecordError(
            f"{where}: 'keypoints' has {n} values, expected {2 * num_joints} "
            f"({num_joints} joints x (x, y)). Re-create the records with the right skeleton."
        )
    try:
        bad = [i for i, v in enumerate(kp) if not math.isfinite(float(v))]
    except (TypeError, ValueError) as err:
        raise RecordError(f"{where}: 'keypoints' holds a non-number: {err}") from err
    if bad:
        raise RecordError(
            f"{where}: keypoint value(s) at position(s) {bad[:6]} are NaN or infinite. "
            "Fix or drop this record; the annotation it came from is broken."
        )
    vis = record.get("visible")
    if vis is not None and len(vis) != num_joints:
        raise RecordError(f"{where}: 'visible' has {len(vis)} flags, expected {num_joints}")
    if check_image and not Path(record["image_path"]).is_file():
        raise RecordError(
            f"{where}: image file not found: {record['image_path']}. The dataset was moved or "
            "deleted: re-create it (notebook 01) or fix the data root."
        )


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def save_records(records: list[dict], path: str | Path) -> Path:
    """Write records as a JSON list, image paths relative to the file. Written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = path.parent.resolve()
    out = []
    for rec in records:
        rec = {k: _jsonable(v) for k, v in rec.items()}
        img = Path(rec["image_path"])
        if img.is_absolute():
            rec["image_path"] = Path(os.path.relpath(img, base)).as_posix()
        out.append(rec)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(out, f)
    os.replace(tmp, path)
    return path


def load_records(
    path: str | Path, num_joints: int = NUM_HAND_JOINTS, check_images: bool = True
) -> list[dict]:
    """Read and validate a records JSON. Relative image paths resolve against the file's folder.

    Raises :class:`RecordError` naming the file and the record on a wrong keypoint count, a NaN,
    a missing key or (with ``check_images``) a missing image file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"records file not found: {path}. Run notebook 01 (records) or 02 (splits) first, "
            "or call make_freihand + load_freihand + save_records."
        )
    try:
        with open(path) as f:
            records = json.load(f)
    except json.JSONDecodeError as err:
        raise RecordError(f"{path}: not valid JSON ({err}). Re-create the file.") from err
    if not isinstance(records, list):
        raise RecordError(f"{path}: expected a JSON list of records, got {type(records).__name__}")
    base = path.parent.resolve()
    for i, rec in enumerate(records):
        if isinstance(rec, dict) and "image_path" in rec:
            img = Path(rec["image_path"])
            rec["image_path"] = str(img if img.is_absolute() else (base / img).resolve())
        validate_record(rec, i, source=str(path), num_joints=num_joints, check_image=check_images)
    return records
