"""RHD, the Rendered Hand Pose dataset (``RHD_published_v2``): its codecs, reader and download.

The layout (Zimmermann & Brox 2017; lmb-freiburg/hand3d ``create_binary_db.py``)::

    RHD_published_v2/
      training/color/%05d.png      41,258 RGB images, 320x320
      training/mask/%05d.png       class ids: 0 background, 1 person, 2-17 left hand (three per
                                   finger tip -> palm, 17 the palm), 18-33 right hand
      training/depth/%05d.png      depth, 16 bits split over R (high byte) and G (low byte)
      training/anno_training.pickle
      evaluation/...               2,728 samples, same layout (anno_evaluation.pickle)

``anno_<split>.pickle`` is a dict ``{id: {"xyz": (42, 3) metres, camera frame, "uv_vis": (42, 3)
u, v, visible (1/0), "K": (3, 3)}}``: keypoints 0-20 the left hand, 21-41 the right, each hand
from the wrist with fingers tip -> palm (12 = middle MCP; :data:`.skeletons.RHD_TO_HAND21`
reorders to HAND21). Like the paper we keep each image's **dominant** hand, the one with more mask
pixels. The synthetic default (:func:`handpose_utils.make_rhd`) writes the same layout.

**Pickles run code.** RHD's annotations are Python pickles, and loading one runs whatever code its
author put in it: open only RHD from the official page (:data:`RHD_PAGE`, :func:`download_rhd`) or
``make_rhd``'s, never a pickle that reached you another way (a shared folder, a forum post)."""

from __future__ import annotations

import pickle
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..downloads import discard_archive, download_file, extract_zip
from ..images import image_size as _pil_image_size
from ..skeletons import RHD_LEFT, RHD_MASK_LEFT, RHD_MASK_RIGHT, RHD_RIGHT, rhd_hand_to_hand21
from .freihand import DatasetNotFoundError, check_extracted, find_root

RHD_URL = "https://lmb.informatik.uni-freiburg.de/data/RenderedHandpose/RHD_v1-1.zip"
# Bytes of the archive as the server reported them (2026-05-31): anything else is refused.
RHD_BYTES = {RHD_URL: 7_080_690_299}
RHD_SIZE = "7.1 GB"
RHD_PAGE = ("https://lmb.informatik.uni-freiburg.de/resources/datasets/"
            "RenderedHandposeDataset.en.html")
RHD_SPLITS = ("training", "evaluation")
RHD_DEPTH_MAX_M = 5.0  # depth PNGs span 0..5 m in 65,536 steps (about 0.08 mm)

_HOW_TO_GET = (
    f"Get the data with handpose_utils.download_rhd(root) (real RHD_published_v2, {RHD_SIZE} zip, "
    f"research use only; see {RHD_PAGE}) or generate the synthetic default with "
    "handpose_utils.make_rhd(root, n_train).")


# Codecs: depth and mask PNGs ----------
def encode_depth(depth_m) -> np.ndarray:
    """Metres ``(H, W)`` -> RHD's depth PNG content ``(H, W, 3)`` uint8: ``d16 = round(d / 5 *
    65535)``, R its high byte, G its low byte, B 0. Depths past 0..5 m (inf: none) are clipped."""
    d = np.nan_to_num(np.asarray(depth_m, dtype=np.float64), nan=RHD_DEPTH_MAX_M,
                      posinf=RHD_DEPTH_MAX_M, neginf=0.0)
    d16 = np.round(np.clip(d, 0.0, RHD_DEPTH_MAX_M) / RHD_DEPTH_MAX_M * 65535).astype(np.uint16)
    out = np.zeros(d.shape + (3,), np.uint8)
    out[..., 0] = d16 >> 8
    out[..., 1] = d16 & 0xFF
    return out


def decode_depth(rgb) -> np.ndarray:
    """RHD's depth PNG content ``(H, W, 3)`` uint8 -> metres ``(H, W)`` float32:
    ``d = (R * 256 + G) / 65535 * 5``. The bytes are widened to uint16 **before** shifting: the
    official snippet shifts the uint8 array itself, which overflows (and raises under NumPy 2)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] < 2 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 depth image, got {rgb.shape} {rgb.dtype}")
    d16 = (rgb[..., 0].astype(np.uint16) << 8) | rgb[..., 1].astype(np.uint16)
    return (d16.astype(np.float32) / np.float32(65535) * np.float32(RHD_DEPTH_MAX_M))


def _open(path: Path, what: str) -> Image.Image:
    if not path.is_file():
        raise DatasetNotFoundError(f"RHD {what} file not found: {path}. " + _HOW_TO_GET)
    try:
        im = Image.open(path)
        im.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise OSError(f"cannot decode RHD {what} {path}: {err}. The file is corrupt or truncated: "
                      "extract or generate the dataset again.") from err
    return im


def read_depth(path: str | Path) -> np.ndarray:
    """Decode a depth PNG into metres ``(H, W)`` float32."""
    with _open(Path(path), "depth") as im:
        return decode_depth(np.asarray(im.convert("RGB")))


def read_mask(path: str | Path) -> np.ndarray:
    """Decode a mask PNG into class ids ``(H, W)`` uint8 (0 background, 1 person, 2-17 left
    hand, 18-33 right hand). RHD stores one 8-bit channel; in an RGB file, the first holds it."""
    with _open(Path(path), "mask") as im:
        arr = np.array(im)  # a writable copy
    if arr.ndim == 3:
        arr = arr[..., 0]
    arr = arr.astype(np.uint8, copy=False)
    if arr.max(initial=0) > RHD_MASK_RIGHT[-1]:
        raise ValueError(f"{path}: mask holds id {int(arr.max())}, but RHD ids run "
                         f"0..{RHD_MASK_RIGHT[-1]}. Is this a mask file?")
    return arr


def hand_pixel_counts(mask) -> tuple[int, int]:
    """Number of ``(left, right)`` hand pixels in a class-id mask (the person, id 1, is no hand)."""
    mask = np.asarray(mask)
    return tuple(int(((mask >= ids[0]) & (mask <= ids[-1])).sum())
                 for ids in (RHD_MASK_LEFT, RHD_MASK_RIGHT))


# Reader ----------
def find_rhd_root(root: str | Path) -> Path:
    """``root`` itself, or ``root/RHD_published_v2``, whichever holds an annotation pickle."""
    return find_root(root, ["RHD_published_v2"], [f"{s}/anno_{s}.pickle" for s in RHD_SPLITS])


def read_rhd_annotations(root: str | Path, split: str = "training") -> dict[int, dict]:
    """The raw annotation dict of ``split``, checked: every entry has ``xyz`` (42, 3), ``uv_vis``
    (42, 3) and ``K`` (3, 3), finite. Loading a pickle can run any code it holds: this opens
    ``<root>/<split>/anno_<split>.pickle`` (or under ``<root>/RHD_published_v2``) and nothing else,
    so pass a root that holds RHD from the official page or made by ``make_rhd``."""
    if split not in RHD_SPLITS:
        raise ValueError(f"split must be one of {RHD_SPLITS}, got {split!r}")
    root = find_rhd_root(root)
    path = root / split / f"anno_{split}.pickle"
    if not path.is_file():
        where = root if root.is_dir() else f"{root} (the folder does not exist)"
        raise DatasetNotFoundError(
            f"RHD annotation file not found: {path} (looked in {where}). " + _HOW_TO_GET)
    try:
        with open(path, "rb") as f:
            anno = pickle.load(f)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError,
            IndexError, KeyError) as err:
        # A truncated file, another format, or a pickle that names a module this Python lacks
        # (one written by a newer NumPy, for instance): say which file, not just the raw error.
        raise ValueError(f"{path} is not a readable pickle ({type(err).__name__}: {err}); "
                         "extract or generate it again") from err
    if not isinstance(anno, dict) or not anno:
        raise ValueError(f"{path}: expected a non-empty dict {{id: annotation}}, got "
                         f"{type(anno).__name__}")
    want = {"xyz": (42, 3), "uv_vis": (42, 3), "K": (3, 3)}
    for sid, entry in anno.items():
        for key, shape in want.items():
            value = np.asarray(entry.get(key) if isinstance(entry, dict) else None, dtype=float)
            if value.shape != shape:
                raise ValueError(f"{path}, sample {sid}: '{key}' has shape {value.shape}, "
                                 f"expected {shape}")
            if not np.isfinite(value).all():
                raise ValueError(f"{path}, sample {sid}: '{key}' holds NaN or inf")
    return anno


def _size_from_header(path: Path) -> tuple[int, int]:
    """``(width, height)`` of an image; a PNG's from its first 24 bytes (the IHDR chunk), ten times
    faster than PIL: checking 41k x 3 RHD files this way adds seconds, not a minute."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError:
        head = b""
    if len(head) == 24 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    return _pil_image_size(path)  # raises naming the file if it is missing or not an image


def _inspect_sample(paths: dict[str, Path], count_hands: bool, check_sizes: bool):
    """``(sizes, counts)`` of a sample: its files' ``(width, height)`` (from the headers, but the
    mask's when it is decoded to count hand pixels) and ``(left, right)`` pixel counts, or None."""
    sizes, counts = {}, None
    if count_hands:
        mask = read_mask(paths["mask"])
        counts = hand_pixel_counts(mask)
        sizes["mask"] = (mask.shape[1], mask.shape[0])
    if check_sizes:
        sizes["color"] = _size_from_header(paths["color"])
        if not count_hands:
            sizes["mask"] = _size_from_header(paths["mask"])
        if paths["depth"].is_file():  # depth is optional for training: checked when present
            sizes["depth"] = _size_from_header(paths["depth"])
    return sizes, counts


def load_rhd(root: str | Path, split: str = "training", dominant: str = "mask",
             check_images: bool = True, workers: int = 4) -> list[dict]:
    """Read RHD's native layout into one record per image, for its dominant hand. Each record holds
    ``image_path``, ``mask_path``, ``depth_path``, ``keypoints`` (uv in pixels, flat
    ``[x1, y1, ...]``, 21 joints in HAND21 order), ``visible`` (per joint, 1/0), ``xyz`` (21 x 3
    metres, camera frame, same order), ``K``, ``hand_side`` (``"left"`` or ``"right"``),
    ``hand_pixels`` (``[left, right]`` mask pixel counts), ``scale`` (the bone length
    ``|xyz[9] - xyz[10]|`` that 3D targets are normalised by), ``sample_id``, ``split``, ``width``,
    ``height`` and ``source``.

    ``dominant="mask"`` (the paper's rule) keeps the hand with more mask pixels, reading every mask
    once; ``"visible"`` keeps the hand with more visible keypoints without reading masks.
    ``check_images`` checks that every colour and mask file exists and that colour, mask and depth
    files match the first image's size. A pickle can run code: only official RHD or make_rhd's."""
    if dominant not in ("mask", "visible"):
        raise ValueError(f"dominant must be 'mask' or 'visible', got {dominant!r}")
    root = find_rhd_root(root)
    anno = read_rhd_annotations(root, split)
    ids = sorted(int(i) for i in anno)
    paths = [{kind: root / split / kind / f"{i:05d}.png" for kind in ("color", "mask", "depth")}
             for i in ids]
    if check_images:
        for sid, p in zip(ids, paths):
            for kind in ("color", "mask"):
                if not p[kind].is_file():
                    raise DatasetNotFoundError(
                        f"RHD {kind} file of sample {sid} not found: {p[kind]} (anno_{split}"
                        f".pickle lists {len(ids)} samples). Re-extract or re-generate the "
                        "dataset.")
    n, count_hands = len(paths), dominant == "mask"
    with ThreadPoolExecutor(max(1, workers)) as pool:  # PNG decoding releases the GIL
        inspected = list(pool.map(_inspect_sample, paths, [count_hands] * n, [check_images] * n))
    counts = [c for _, c in inspected]
    first = paths[0]["color"]
    width, height = _size_from_header(first) if first.is_file() else (320, 320)
    # Every file of a split must have one size: a single odd file would otherwise surface in the
    # DataLoader as torch.stack's "stack expects each tensor to be equal size", naming none.
    for sid, p, (sizes, _) in zip(ids, paths, inspected):
        for kind, (w, h) in sizes.items():
            if (w, h) != (width, height):
                raise ValueError(
                    f"RHD {kind} file of sample {sid}, {p[kind]}, is {w} x {h} pixels, but the "
                    f"colour image of sample {ids[0]} ({first}) is {width} x {height}: every "
                    "colour, mask and depth image of a split must have the same size (RHD's are "
                    "320 x 320). The file is corrupt or from another dataset: extract or "
                    "generate the dataset again.")
    source = "synthetic-RHD" if (root / "synthetic_meta.json").is_file() else "RHD"
    records = []
    for sid, p, count in zip(ids, paths, counts):
        entry = anno[sid]
        xyz42 = np.asarray(entry["xyz"], dtype=np.float64)
        uv_vis = np.asarray(entry["uv_vis"], dtype=np.float64)
        vis42 = uv_vis[:, 2] > 0.5
        if count is None:
            count = (int(vis42[RHD_LEFT].sum()), int(vis42[RHD_RIGHT].sum()))
        # The paper's rule: left only when it has strictly more pixels (ties go right).
        side = "left" if count[0] > count[1] else "right"
        sl = RHD_LEFT if side == "left" else RHD_RIGHT
        xyz = rhd_hand_to_hand21(xyz42[sl])
        uv = rhd_hand_to_hand21(uv_vis[sl, :2])
        vis = rhd_hand_to_hand21(vis42[sl])
        if (xyz[:, 2] <= 0).any():
            raise ValueError(f"{root / split / f'anno_{split}.pickle'}, sample {sid}: the "
                             f"{side} hand has joints behind the camera (z <= 0)")
        records.append({
            "image_path": str(p["color"]), "mask_path": str(p["mask"]),
            "depth_path": str(p["depth"]), "keypoints": uv.reshape(-1).round(4).tolist(),
            "visible": vis.astype(int).tolist(), "xyz": xyz.tolist(),
            "K": np.asarray(entry["K"], dtype=np.float64).tolist(), "hand_side": side,
            "hand_pixels": [int(count[0]), int(count[1])],
            "scale": float(np.linalg.norm(xyz[9] - xyz[10])), "sample_id": sid, "split": split,
            "width": width, "height": height, "source": source})
    return records


def download_rhd(root: str | Path, keep_zip: bool = False) -> Path:
    """Download and extract the real RHD into ``root/RHD_published_v2`` (meant for Colab):
    :data:`RHD_URL` (:data:`RHD_SIZE`, and several GB more extracted: leave about 20 GB free), and
    check the expected files. RHD is for research use only; by downloading it you accept its
    licence (:data:`RHD_PAGE`). Extract to local disk: reading 44k files from Drive is very slow."""
    root = Path(root)
    target = root / "RHD_published_v2"
    marker = target / "training" / "anno_training.pickle"
    if not marker.is_file():
        zpath = download_file(RHD_URL, root / RHD_URL.rsplit("/", 1)[1], size=RHD_BYTES[RHD_URL])
        extract_zip(zpath, root)
        if not marker.is_file():
            found = next(root.glob("**/training/anno_training.pickle"), None)
            if found is None:
                raise DatasetNotFoundError(f"{zpath} did not contain training/anno_training.pickle;"
                                           " the download is broken: delete it and retry")
            shutil.move(str(found.parent.parent), str(target))
        discard_archive(zpath, keep_zip)
    expected = [f"{s}/{x}" for s in RHD_SPLITS for x in ("color", "mask", "depth",
                                                          f"anno_{s}.pickle")]
    return check_extracted(target, expected)
