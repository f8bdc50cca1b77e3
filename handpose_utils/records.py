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
"""

from __future__ import annotations

import json
import math
import os
from itertools import chain, compress
from pathlib import Path

import numpy as np

from .safefiles import write_json
from .skeletons import NUM_HAND_JOINTS


class RecordError(ValueError):
    """A record is malformed. The message names the file, the record and the fix."""


def keypoints_array(record: dict) -> np.ndarray:
    """A record's keypoints as a ``(J, 2)`` float32 array."""
    return np.asarray(record["keypoints"], dtype=np.float32).reshape(-1, 2)


def visible_array(record: dict) -> np.ndarray:
    """A record's per-joint visibility as a bool array (all True when the record has none)."""
    vis = record.get("visible")
    if vis is None:
        return np.ones(len(record["keypoints"]) // 2, bool)
    _check_flags(vis, str(record.get("image_path")))
    return np.asarray(vis, bool)


def _check_flags(vis, where: str) -> None:
    """Raise unless every flag is a bool or the int 0/1: converting anything else to bool would
    be silently wrong ("0" and 2 both become True)."""
    if set(map(type, vis)) <= {int, bool} and set(vis) <= {0, 1}:
        return  # the common case, checked at C speed; below finds the culprit otherwise
    for i, v in enumerate(vis):  # True == 1 and False == 0, numpy's too
        if not (isinstance(v, (bool, np.bool_, int, np.integer)) and v in (0, 1)):
            raise RecordError(
                f"{where}: 'visible' flag at position {i} is {_describe(v)}; flags must be "
                "true/false or the integers 0/1 (a string such as \"0\" would count as "
                "visible). Fix the code that wrote these records, or re-create them.")


def _finite_numbers(values) -> bool:
    """Fast check for the common case, plain finite ints/floats: records are checked one by one
    on every load (130,000 of them for FreiHAND), so this avoids a Python call per value. A NaN
    or infinity anywhere makes the sum non-finite. False means "look closer"."""
    return set(map(type, values)) <= {int, float} and math.isfinite(sum(values))


def _check_numbers(values, where: str, what: str) -> None:
    """Raise unless ``values`` are finite numbers, naming the first culprit."""
    for i, v in enumerate(values):  # True is an int to Python, never a coordinate
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer,
                                                                 np.floating)):
            raise RecordError(f"{where}: {what} holds a non-number at position {i}: "
                              f"{_describe(v)}. Re-create the records.")
    bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
    if bad:
        raise RecordError(f"{where}: {what} value(s) at position(s) {bad[:6]} are NaN or infinite. "
                          "Fix or drop this record; the annotation it came from is broken.")


def _describe(v) -> str:
    return f"{v!r} ({type(v).__name__})"


def validate_record(record: dict, index: int, source: str = "records",
                    num_joints: int = NUM_HAND_JOINTS, check_image: bool = True) -> None:
    """Raise :class:`RecordError` (naming ``source``, the record and the fix) unless ``record``
    has an ``image_path`` and ``2 * num_joints`` finite keypoints, and its optional ``visible``,
    ``width``, ``height`` and ``xyz`` are well formed; with ``check_image``, the image exists."""
    where = f"{source}, record {index}"
    if not isinstance(record, dict):
        raise RecordError(f"{where}: expected a dict, got {type(record).__name__}")
    missing = [k for k in ("image_path", "keypoints") if k not in record]
    if missing:
        raise RecordError(f"{where}: missing keys {missing}. Re-create the records (notebook 01).")
    if not isinstance(record["image_path"], str) or not record["image_path"]:
        raise RecordError(f"{where}: 'image_path' must be a file path (a string), got "
                          f"{_describe(record['image_path'])}. Re-create the records.")
    where += f" ({record['image_path']})"
    kp = record["keypoints"]
    if not isinstance(kp, (list, tuple)) or len(kp) != 2 * num_joints:
        n = len(kp) if isinstance(kp, (list, tuple)) else type(kp).__name__
        raise RecordError(f"{where}: 'keypoints' has {n} values, expected {2 * num_joints} "
                          f"({num_joints} joints x (x, y)). Re-create them for this skeleton.")
    if not _finite_numbers(kp):
        _check_numbers(kp, where, "'keypoints'")
    vis = record.get("visible")
    if vis is not None:
        if not isinstance(vis, (list, tuple)) or len(vis) != num_joints:
            got = f"{len(vis)} flags" if isinstance(vis, (list, tuple)) else _describe(vis)
            raise RecordError(f"{where}: 'visible' must be a list of {num_joints} flags, got "
                              f"{got}. Re-create the records.")
        _check_flags(vis, where)
    check_record_fits(record, where)
    if "xyz" in record:
        _check_xyz(record["xyz"], where, num_joints)
    if check_image and not Path(record["image_path"]).is_file():
        raise RecordError(f"{where}: image file not found: {record['image_path']}. The dataset was "
                          "moved or deleted: re-create it (notebook 01) or fix the data root.")


def check_record_fits(record: dict, where: str, size: tuple[int, int] | None = None) -> None:
    """Raise :class:`RecordError` unless the record's optional ``width`` and ``height`` are
    positive integers, equal to ``size`` (the image's actual ``(W, H)``) when given, and its
    visible keypoints can be pixels of that size: not all within [-0.5, 1.5] (normalised, as
    MediaPipe's) nor any more than one image size outside it. A hand cut by the image's edge
    passes; unlabelled joints (COCO's (0, 0)) and invisible ones do not count."""
    stated = [record.get("width"), record.get("height")]
    for name, v in zip(("width", "height"), stated):
        if name in record and (isinstance(v, (bool, np.bool_))
                               or not isinstance(v, (int, np.integer)) or v <= 0):
            file = "" if size is None else f" (the file is {size[0]}x{size[1]})"
            raise RecordError(
                f"{where}: '{name}' is {_describe(v)}, not a positive integer number of pixels"
                f"{file}. Fix the code that wrote these records, or re-create them (notebook 01).")
    if size is not None and any(v not in (None, s) for v, s in zip(stated, size)):
        said = "x".join("?" if v is None else str(v) for v in stated)
        raise RecordError(f"{where}: the file is {size[0]}x{size[1]} but its record says {said}; "
                          "its keypoints belong to another resolution. Re-create the records "
                          "for these images.")
    width, height = size or stated
    kp = record["keypoints"]
    kp = kp.ravel().tolist() if isinstance(kp, np.ndarray) else kp  # (J, 2), handed straight in
    vis = [1] * (len(kp) // 2) if record.get("visible") is None else record["visible"]
    xs, ys = list(compress(kp[0::2], vis)), list(compress(kp[1::2], vis))
    if width is None or height is None or not xs:
        return
    # Distinct points only: one point, or a placeholder's all at (0, 0), has no extent to judge.
    if (max(xs + ys) <= 1.5 and min(xs + ys) >= -0.5 and min(width, height) > 16
            and len(set(zip(xs, ys))) > 1):
        raise RecordError(f"{where}: every visible keypoint lies within [-0.5, 1.5] in a "
                          f"{width}x{height} image: normalised coordinates? Keypoints are pixels: "
                          "multiply x by the width and y by the height.")
    if min(xs) < -width or max(xs) > 2 * width or min(ys) < -height or max(ys) > 2 * height:
        raise RecordError(f"{where}: visible keypoints reach x {min(xs):g} to {max(xs):g}, y "
                          f"{min(ys):g} to {max(ys):g}, more than one image size outside the "
                          f"{width}x{height} image: another resolution or another image's "
                          "keypoints? Re-create the records for these images.")


def _check_xyz(xyz, where: str, num_joints: int) -> None:
    """``xyz`` must be ``num_joints`` joints of 3 finite numbers (metres, camera frame)."""
    shape = f"{num_joints} x 3 (joints x (x, y, z), metres)"
    if not isinstance(xyz, (list, tuple)) or len(xyz) != num_joints:
        got = f"{len(xyz)} joints" if isinstance(xyz, (list, tuple)) else _describe(xyz)
        raise RecordError(f"{where}: 'xyz' has {got}, expected {shape}. Re-create the records.")
    if set(map(type, xyz)) <= {list, tuple} and set(map(len, xyz)) == {3} and \
            _finite_numbers(list(chain.from_iterable(xyz))):
        return  # the common case, checked without a Python call per value
    for j, joint in enumerate(xyz):
        if not isinstance(joint, (list, tuple)) or len(joint) != 3:
            got = f"{len(joint)} values" if isinstance(joint, (list, tuple)) else _describe(joint)
            raise RecordError(f"{where}: 'xyz' joint {j} has {got}, expected {shape}. "
                              "Re-create the records.")
        _check_numbers(joint, where, f"'xyz' joint {j}")


def _jsonable(value):
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()  # numpy scalars become Python numbers
    return str(value) if isinstance(value, Path) else value


def save_records(records: list[dict], path: str | Path) -> Path:
    """Write records as a JSON list, image paths relative to the file (so a data folder can be
    moved, say to ``/content/data`` in Colab). Written atomically (``safefiles.write_json``)."""
    path = Path(path)
    base = path.parent.resolve()  # write_json creates the folder
    out = []
    for rec in records:
        rec = {k: _jsonable(v) for k, v in rec.items()}
        img = Path(rec["image_path"])
        if img.is_absolute():
            rec["image_path"] = Path(os.path.relpath(img, base)).as_posix()
        out.append(rec)
    return write_json(path, out)


def load_records(path: str | Path, num_joints: int = NUM_HAND_JOINTS,
                 check_images: bool = True) -> list[dict]:
    """Read a records JSON, each record checked by :func:`validate_record` (``check_images``: its
    image file exists). Relative image paths resolve against the file's folder."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"records file not found: {path}. Run notebook 01 (records) or 02 (splits) first, "
            "or call make_freihand + load_freihand + save_records.")
    try:
        records = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise RecordError(f"{path}: not valid JSON ({err}). Re-create the file.") from err
    if not isinstance(records, list):
        raise RecordError(f"{path}: expected a JSON list of records, got {type(records).__name__}")
    # Resolved once: save_records writes os.path.relpath paths, whose ".." all come first, so
    # joining them to the real folder and normalising gives the same path as a per-record
    # Path.resolve(), which costs a few system calls per record (about 7 s for 104,192 records).
    base = str(path.parent.resolve())
    for i, rec in enumerate(records):
        if isinstance(rec, dict) and isinstance(rec.get("image_path"), str):
            rec["image_path"] = os.path.normpath(os.path.join(base, rec["image_path"]))
        validate_record(rec, i, source=str(path), num_joints=num_joints, check_image=check_images)
    return records
