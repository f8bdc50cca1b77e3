"""FreiHAND v2 (``FreiHAND_pub_v2``): reading the native layout, and downloading it in Colab.

The layout (lmb-freiburg/freihand, ``utils/fh_utils.py``)::

    FreiHAND_pub_v2/
      training/rgb/%08d.jpg      130,240 images = 32,560 unique poses x 4 versions
                                 (gs, hom, sample, auto): image id = idx + 32560 * version
      training/mask/%08d.jpg     32,560 hand masks, by unique idx
      training_xyz.json          21 x 3 joints per unique pose, metres, camera frame
      training_K.json            3 x 3 intrinsics per unique pose
      training_scale.json        |xyz[9] - xyz[10]| per unique pose
      evaluation/rgb/%08d.jpg    3,960 evaluation images (one version)
      evaluation_K.json, evaluation_scale.json, and in the later release evaluation_xyz.json

2D keypoints are not stored: they are the projection ``uv = K xyz`` (then divide by z). The
synthetic default (:func:`handpose_utils.make_freihand`) writes the same layout. Also here, for
every reader: :class:`DatasetNotFoundError`, :func:`read_dataset_json`, the synthetic stamp
(:func:`synthetic_meta`) and fingerprints that tell cached splits when to rebuild."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from .. import camera
from ..downloads import discard_archive, download_file, extract_zip, file_digest
from ..images import image_size

FREIHAND_URL = "https://lmb.informatik.uni-freiburg.de/data/freihand/FreiHAND_pub_v2.zip"
FREIHAND_EVAL_URL = "https://lmb.informatik.uni-freiburg.de/data/freihand/FreiHAND_pub_v2_eval.zip"
# Bytes of each archive as the server reported them (2026-05-31): anything else is refused.
FREIHAND_BYTES = {FREIHAND_URL: 3_881_833_583, FREIHAND_EVAL_URL: 758_382_230}
FREIHAND_SIZE = "3.7 GB"
FREIHAND_EVAL_SIZE = "724 MB"
FREIHAND_PAGE = "https://lmb.informatik.uni-freiburg.de/projects/freihand/"
FREIHAND_SPLITS = ("training", "evaluation")

_HOW_TO_GET = (
    f"Get the data with handpose_utils.download_freihand(root) (real FreiHAND, {FREIHAND_SIZE}, "
    f"research use only; see {FREIHAND_PAGE}) or generate the synthetic default with "
    "handpose_utils.make_freihand(root, n_poses).")


class DatasetNotFoundError(FileNotFoundError):
    """A dataset file or folder is missing. The message names it and says how to get the data."""


def find_root(root: str | Path, subfolders, markers) -> Path:
    """``root`` or the first ``root/<subfolder>`` that holds one of ``markers``, else ``root``."""
    root = Path(root)
    return next((folder for folder in (root, *(root / s for s in subfolders))
                 if any((folder / m).exists() for m in markers)), root)


def find_freihand_root(root: str | Path) -> Path:
    """``root`` itself, or ``root/FreiHAND_pub_v2``, whichever holds ``training_xyz.json``."""
    return find_root(root, ["FreiHAND_pub_v2"], ["training_xyz.json", "evaluation_K.json"])


def synthetic_meta(root: str | Path) -> dict | None:
    """The stamp a synthetic-dataset writer puts in ``root`` last (its settings, generator and
    version), or None where there is no finished synthetic dataset (real data, say)."""
    try:
        with open(Path(root) / "synthetic_meta.json") as f:
            meta = json.load(f)
    except (OSError, json.JSONDecodeError):
        return None
    return meta if isinstance(meta, dict) else None


def data_fingerprint(root: str | Path, split: str = "training") -> dict:
    """What the records of ``split`` are made from: per annotation file its size and SHA-256, and
    the synthetic generator's version (None for real FreiHAND). The whole file is hashed: a
    re-download or re-render can keep size and time, a ``touch`` changes the time but no label.
    Cheap next to loading: real FreiHAND's files hash in 0.1 s, its records take tens of seconds."""
    root = find_freihand_root(root)
    files = {}
    for kind in ("xyz", "K", "scale", "visibility"):  # what load_freihand reads
        path = root / f"{split}_{kind}.json"
        if path.is_file():
            files[path.name] = {"bytes": path.stat().st_size, "sha256": file_digest(path)}
    meta = synthetic_meta(root) or {}
    return {"split": split, "files": files, "generator_version": meta.get("generator_version")}


def fingerprint_changes(old, new: dict) -> list[str]:
    """Why :func:`data_fingerprint` ``old`` (from a split_meta.json) is not ``new``, in words."""
    if not isinstance(old, dict) or not isinstance(old.get("files"), dict):
        return ["they carry no fingerprint of the data (written by an older version of the "
                "course code)"]
    why = []
    if old.get("generator_version") != new["generator_version"]:
        why.append(f"synthetic generator version {old.get('generator_version')} -> "
                   f"{new['generator_version']}")
    for name in sorted(set(old["files"]) | set(new["files"])):
        before, now = old["files"].get(name), new["files"].get(name)
        if before is None:
            why.append(f"{name} is new")
        elif now is None:
            why.append(f"{name} is gone")
        elif before != now:
            why.append(f"{name} changed ({before.get('bytes')} -> {now['bytes']} bytes, "
                       "different content)")
    return why


def freihand_image_path(root: str | Path, split: str, image_id: int) -> Path:
    return Path(root) / split / "rgb" / f"{image_id:08d}.jpg"


def check_extracted(target: Path, expected, hint: str = "") -> Path:
    """``target``, once every ``expected`` path under it exists; else raise naming the missing."""
    missing = [str(e) for e in expected if not (target / e).exists()]
    if missing:
        raise DatasetNotFoundError(f"after extraction, {target} lacks {missing}{hint}")
    return target


def read_dataset_json(path: Path, what: str, how_to_get: str = ""):
    """The JSON content of a dataset file. A missing file raises :class:`DatasetNotFoundError`
    (``what`` not found, ``how_to_get``), a broken one ``ValueError``; both name the file."""
    if not path.is_file():
        hint = f". {how_to_get}" if how_to_get else ""
        raise DatasetNotFoundError(f"{what} not found: {path}{hint}")
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); download or generate it "
                         "again") from err


def _read_array(path: Path, what: str, n: int | None = None, shape: tuple = ()) -> np.ndarray:
    """The JSON list in ``path`` as a float array (``n`` entries if given, each of ``shape`` unless
    ``()``); errors name the file and the first entry unlike entry 0 (NumPy's name neither)."""
    data = read_dataset_json(path, "FreiHAND annotation file", _HOW_TO_GET)
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list with one entry of {what} per pose, got a "
                         f"{type(data).__name__}. The file is not in FreiHAND's format: download "
                         "or generate it again.")
    try:
        values = np.asarray(data, dtype=np.float64)
    except (ValueError, TypeError):
        shapes = [_entry_shape(entry) for entry in data]
        i = next(i for i, shape in enumerate(shapes) if shape is None or shape != shapes[0])
        got = (f"has shape {shapes[i]}" if shapes[i] is not None
               else "is ragged or holds non-numbers")
        than = f", but entry 0 has shape {shapes[0]}" if i > 0 else ""
        raise ValueError(f"{path}: entry {i} {got}{than}; every entry must be {what}. The file "
                         "is corrupt or was edited: download or generate it again.") from None
    if n is not None and len(values) != n:
        raise ValueError(
            f"{path} has {len(values)} entries but {path.name.rsplit('_', 1)[0]}_xyz.json has {n} "
            "poses: one entry per pose is needed. The files come from different downloads or one "
            "is truncated: download or generate the dataset again.")
    if shape and values.shape[1:] != shape:
        raise ValueError(f"{path}: expected {n or 'N'} entries of {what}, got shape {values.shape}")
    return values


def _entry_shape(entry) -> tuple | None:
    try:
        return np.asarray(entry, dtype=np.float64).shape
    except (ValueError, TypeError):
        return None


def _reject(path: Path, bad: np.ndarray, what: str, values: np.ndarray) -> None:
    """Raise naming ``path``, the first bad pose indices and their values, if any is ``bad``."""
    idx = np.flatnonzero(bad)
    if len(idx):
        first = np.asarray(values[idx[0]]).tolist()
        raise ValueError(
            f"{path}: pose(s) {idx[:8].tolist()}{' ...' if len(idx) > 8 else ''} "
            f"({len(idx)} in all) have {what}; pose {idx[0]} holds {first}. The file is corrupt: "
            "download or generate the dataset again.")


def load_freihand(root: str | Path, split: str = "training", versions: list[int] | None = None,
                  check_images: bool = True, project=None) -> list[dict]:
    """Read FreiHAND's native layout into records, one per image. Each record holds ``image_path``,
    ``keypoints`` (uv in pixels, flat [x1, y1, ...]), ``visible`` (per joint; all 1 for real
    FreiHAND, whose joints are all labelled), ``xyz`` (metres, camera frame), ``K``, ``scale``,
    ``pose_id`` (the unique pose idx), ``version`` (0 gs, 1 hom, 2 sample, 3 auto), ``image_id``,
    ``split``, ``width``, ``height`` and ``source``.

    ``versions`` picks background versions (default: all on disk), whose images ``check_images``
    checks. ``project(xyz, K)``, ``(21, 3)`` points and a ``(3, 3)`` camera to ``(21, 2)`` pixels,
    makes the keypoints (default :func:`handpose_utils.camera.project`, all poses at once)."""
    if split not in FREIHAND_SPLITS:
        raise ValueError(f"split must be one of {FREIHAND_SPLITS}, got {split!r}")
    root = find_freihand_root(root)
    rgb_dir = root / split / "rgb"
    for what, folder in (("folder", root), ("image folder", rgb_dir)):
        if not folder.is_dir():
            raise DatasetNotFoundError(f"FreiHAND {what} not found: {folder}. " + _HOW_TO_GET)
    xyz_path = root / f"{split}_xyz.json"
    if split == "evaluation" and not xyz_path.is_file():
        raise DatasetNotFoundError(
            f"{xyz_path} not found. The evaluation keypoints are in the separate evaluation "
            f"archive: download_freihand(root, evaluation=True) fetches {FREIHAND_EVAL_URL} "
            f"({FREIHAND_EVAL_SIZE}).")
    xyz = _read_array(xyz_path, "21 x 3 joint positions", shape=(21, 3))
    n = len(xyz)
    _reject(xyz_path, ~np.isfinite(xyz).all(axis=(1, 2)) | (xyz[:, :, 2] <= 0).any(axis=1),
            "non-finite coordinates or joints behind the camera (z <= 0)", xyz)
    K_path = root / f"{split}_K.json"
    K = _read_array(K_path, "3 x 3 camera matrices", n, (3, 3))
    # Projection divides by K's third row and needs an invertible K; a broken K would only
    # surface later as a NaN loss that names no file.
    finite = np.isfinite(K).all(axis=(1, 2))
    _reject(K_path, ~finite, "non-finite (NaN or inf) camera matrices", K)
    _reject(K_path, np.linalg.matrix_rank(np.where(finite[:, None, None], K, 0.0)) < 3,
            "singular camera matrices (all zero, or rows that depend on each other)", K)
    scale_path = root / f"{split}_scale.json"
    if scale_path.is_file():
        scale = _read_array(scale_path, "one bone length", n)
        if scale.ndim == 2 and scale.shape[1] == 1:  # [[s], [s], ...] holds the same numbers
            scale = scale[:, 0]
        if scale.ndim != 1:
            raise ValueError(f"{scale_path}: expected one bone length per pose, got shape "
                             f"{scale.shape}")
        _reject(scale_path, ~(np.isfinite(scale) & (scale > 0)),
                "a scale (bone length) that is NaN, zero or negative", scale)
    else:
        scale = np.linalg.norm(xyz[:, 9] - xyz[:, 10], axis=-1)
    vis_path = root / f"{split}_visibility.json"  # synthetic extra; real FreiHAND has none
    if vis_path.is_file():
        visible = _read_array(vis_path, "21 visibility flags", n, (21,))
        _reject(vis_path, ~np.isin(visible, (0, 1)).all(axis=1),
                "visibility flags other than 0 or 1", visible)
        visible = visible.astype(int)
    else:
        visible = np.ones((n, 21), int)
    if project is None:
        uv = camera.project(xyz, K)
    else:  # one pose at a time, the way a learner's projection is written
        uv = np.stack([np.asarray(project(p, k), dtype=np.float64) for p, k in zip(xyz, K)])

    # A version is on disk when its first image is; then all its images must be.
    available = [v for v in range(4) if freihand_image_path(root, split, n * v).is_file()]
    if not available:
        first = freihand_image_path(root, split, 0).name
        raise DatasetNotFoundError(f"no images in {rgb_dir} (expected {first}, ...). "
                                   + _HOW_TO_GET)
    if versions is None:
        versions = available
    for v in versions:
        if not 0 <= v < 4:
            raise ValueError(f"FreiHAND versions are 0..3 (gs, hom, sample, auto), got {v}")
        if check_images:
            for idx in (0, n - 1):  # the first and last image of each version
                path = freihand_image_path(root, split, idx + n * v)
                if not path.is_file():
                    raise DatasetNotFoundError(
                        f"expected image {path} (version {v} of pose {idx}) is missing: "
                        f"{split}_xyz.json has {n} poses. Re-extract or re-generate the "
                        "dataset, or pass versions=[...] to use fewer versions.")
    width, height = image_size(freihand_image_path(root, split, 0))
    source = "synthetic-FreiHAND" if (root / "synthetic_meta.json").is_file() else "FreiHAND"
    records = []
    for v in versions:
        for idx in range(n):
            image_id = idx + n * v
            records.append({
                "image_path": str(freihand_image_path(root, split, image_id)),
                "keypoints": uv[idx].reshape(-1).round(4).tolist(),
                "visible": visible[idx].tolist(), "xyz": xyz[idx].tolist(), "K": K[idx].tolist(),
                "scale": float(scale[idx]), "pose_id": idx, "version": v, "image_id": image_id,
                "split": split, "width": width, "height": height, "source": source})
    return records


def download_freihand(root: str | Path, evaluation: bool = True, keep_zip: bool = False,
                      training: bool = True) -> Path:
    """Download and extract the real FreiHAND_pub_v2 into ``root/FreiHAND_pub_v2`` (meant for
    Colab): ``FREIHAND_URL`` (3.7 GB) with ``training``, ``FREIHAND_EVAL_URL`` (724 MB, the
    evaluation keypoints) with ``evaluation``; checks that the expected files exist. FreiHAND is
    for research use only; by downloading it you accept its licence (see the project page).
    Extract to the runtime's local disk: training from small files on Google Drive is very slow."""
    root = Path(root)
    target = root / "FreiHAND_pub_v2"
    archives = [(FREIHAND_URL, "training_xyz.json", training),
                (FREIHAND_EVAL_URL, "evaluation_xyz.json", evaluation)]
    for url, marker, wanted in archives:
        if not wanted or (target / marker).is_file():
            continue
        zpath = download_file(url, root / url.rsplit("/", 1)[1], size=FREIHAND_BYTES[url])
        staging = root / (zpath.stem + ".extract")
        extract_zip(zpath, staging)
        found = next((c.parent for depth in range(3)  # the marker's folder, at most 2 levels down
                      for c in staging.glob("/".join(["*"] * depth + [marker]))), None)
        if found is None:
            raise DatasetNotFoundError(f"{zpath} did not contain {marker}; the download is broken")
        target.mkdir(parents=True, exist_ok=True)
        for item in found.iterdir():  # merge the archive's top folder into the target
            dest = target / item.name
            if item.is_dir() and dest.is_dir():
                for sub in item.iterdir():
                    if not (dest / sub.name).exists():
                        shutil.move(str(sub), str(dest / sub.name))
            elif not dest.exists():
                shutil.move(str(item), str(dest))
        shutil.rmtree(staging, ignore_errors=True)
        discard_archive(zpath, keep_zip)
    expected = (["training_xyz.json", "training_K.json", "training_scale.json", "training/rgb"]
                if training else [])
    if evaluation:
        expected += ["evaluation_xyz.json", "evaluation_K.json", "evaluation/rgb"]
    return check_extracted(target, expected)
