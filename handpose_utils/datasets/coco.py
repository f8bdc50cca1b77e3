"""COCO 2017 person keypoints: reading both common layouts, and downloading in Colab.

:func:`find_coco_files` finds the **standard** layout, as the official zips extract::

      root/annotations/person_keypoints_{train,val}2017.json
      root/{train,val}2017/000000000785.jpg

and the **FiftyOne** one (``fo.zoo.load_zoo_dataset("coco-2017")``, the reference project's)::

      root/raw/person_keypoints_{train,val}2017.json
      root/{train,validation}/data/000000000785.jpg

The synthetic default (:func:`handpose_utils.make_coco`) writes the standard layout. Every
annotated person becomes a sample (the reference kept only each image's first person, leaving the
others unlabelled in its targets); crowd regions and people without keypoints have nothing to
learn from, and COCO's evaluation ignores them too."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..downloads import discard_archive, download_file, extract_zip
from ..images import ImageReadError
from .freihand import DatasetNotFoundError, read_dataset_json

COCO_URLS = {
    "val2017": "http://images.cocodataset.org/zips/val2017.zip",
    "train2017": "http://images.cocodataset.org/zips/train2017.zip",
    "annotations": "http://images.cocodataset.org/annotations/annotations_trainval2017.zip",
}
# Bytes of each archive as the server reported them (2026-05-31), and the one MD5 it reports
# (the annotations' ETag): anything else is refused.
COCO_BYTES = {"val2017": 815_585_330, "train2017": 19_336_861_798, "annotations": 252_907_541}
COCO_MD5 = {"annotations": "f4bbac642086de4f52a3fdda2de5fa2c"}
COCO_PAGE = "https://cocodataset.org/#download"
COCO_SPLITS = ("train", "val")
_FIFTYONE_SPLIT = {"train": "train", "val": "validation"}

_HOW_TO_GET = (
    "Download it with handpose_utils.download_coco(root) (val2017 images, 778 MB, and the "
    "annotations, 241 MB; add splits=('val', 'train') for train2017, 18 GB; see " + COCO_PAGE
    + "), or generate the synthetic default with handpose_utils.make_coco(root, n_train, n_val).")


def find_coco_files(root: str | Path, split: str = "val") -> tuple[Path, Path]:
    """``(annotation_file, image_dir)`` of ``split`` ("train" or "val") under ``root``, in either
    layout; else raises :class:`DatasetNotFoundError` naming what is missing and how to get it."""
    if split not in COCO_SPLITS:
        raise ValueError(f"split must be one of {COCO_SPLITS}, got {split!r}")
    root = Path(root)
    name = f"person_keypoints_{split}2017.json"
    candidates = [(root / "annotations" / name, root / f"{split}2017"),
                  (root / "raw" / name, root / _FIFTYONE_SPLIT[split] / "data")]
    for ann, images in candidates:
        if ann.is_file():
            if not images.is_dir():
                raise DatasetNotFoundError(
                    f"found {ann} but not its image folder {images}. "
                    + ("Download the images zip for this split. " if "annotations" in ann.parts
                       else "Load the FiftyOne split with its images. ") + _HOW_TO_GET)
            return ann, images
    raise DatasetNotFoundError(
        f"COCO {split} keypoints not found under {root}: expected {candidates[0][0]} with "
        f"{candidates[0][1]}/ (standard layout) or {candidates[1][0]} with {candidates[1][1]}/ "
        f"(FiftyOne layout). " + _HOW_TO_GET)


def has_coco_split(root: str | Path, split: str) -> bool:
    """Whether ``root`` holds ``split`` with its images, in either layout."""
    try:
        find_coco_files(root, split)
    except DatasetNotFoundError:
        return False
    return True


def coco_image_ids(samples: list[dict]) -> list[int]:
    """The distinct image ids of ``samples``, sorted (for evaluating on a subset of images)."""
    return sorted({int(s["image_id"]) for s in samples})


_IMAGE_KEYS = ("id", "file_name", "width", "height")
_PERSON_KEYS = ("id", "image_id", "keypoints", "bbox")  # and num_keypoints, checked on its own


def _require(entry, keys, where: str, index: int, ann_file: Path) -> None:
    """Raise naming the entry (``<where>[<index>]``) and its first missing key (KeyError won't)."""
    if not isinstance(entry, dict):
        raise ValueError(f"{ann_file}: {where}[{index}] is a {type(entry).__name__}, not a JSON "
                         "object; the file is not a COCO annotation file")
    for key in keys:
        if key not in entry:
            ident = f" (id {entry['id']})" if "id" in entry else ""
            needs = (f"every image entry needs {', '.join(_IMAGE_KEYS)}" if keys == _IMAGE_KEYS
                     else f"every person annotation needs {', '.join(_PERSON_KEYS)}")
            raise ValueError(f"{ann_file}: {where}[{index}]{ident} has no {key!r}; {needs}. "
                             "Fix the entry, or download or generate the file again.")


def _checked_person(ann: dict, index: int, ann_file: Path):
    """``(keypoints (17, 3), num_keypoints, bbox, area)`` of a non-crowd annotation, checked. Every
    problem raises naming the annotation: a NaN box would otherwise be clipped into a made-up one,
    and a visibility of 7 would pass as "visible". The checks are plain Python on purpose: NumPy's
    per-call overhead would add half a minute over train2017's 262k people."""
    _require(ann, _PERSON_KEYS, "annotations", index, ann_file)

    def where():
        return f"{ann_file}: annotation {ann['id']} (image {ann['image_id']})"

    if "num_keypoints" not in ann:
        raise ValueError(
            f"{where()} has no 'num_keypoints'. COCO stores it with every annotation (the number "
            "of joints with v > 0) and pycocotools' COCOeval needs it too: add it, e.g. "
            "ann['num_keypoints'] = sum(v > 0 for v in ann['keypoints'][2::3]).")
    try:
        kp = [float(v) for v in ann["keypoints"]]
        box = [float(v) for v in ann["bbox"]]
        area = float(ann.get("area", 1.0))
    except (ValueError, TypeError) as err:
        raise ValueError(f"{where()}: keypoints, bbox and area must be lists of numbers and a "
                         f"number ({err})") from None
    if len(kp) != 51:
        raise ValueError(f"{where()} has {len(kp)} keypoint values; expected 51 = 17 x 3 (x, y, v "
                         "for each of COCO's 17 person joints). Is this a person-keypoints file "
                         "with the COCO-17 skeleton?")
    if not all(map(math.isfinite, kp)):
        raise ValueError(f"{where()}: keypoints hold NaN or inf: {ann['keypoints']}")
    bad_v = [j for j, v in enumerate(kp[2::3]) if v not in (0.0, 1.0, 2.0)]
    if bad_v:
        raise ValueError(f"{where()}: joint(s) {bad_v} have visibility "
                         f"{[ann['keypoints'][3 * j + 2] for j in bad_v]}; COCO's v must be 0, 1 "
                         "or 2 (unlabelled, labelled but occluded, visible)")
    if len(box) != 4 or not all(map(math.isfinite, box)):
        raise ValueError(f"{where()}: bbox must be 4 finite numbers [x, y, w, h], got "
                         f"{ann['bbox']}")
    if not math.isfinite(area):
        raise ValueError(f"{where()}: area is {area}, expected a finite number of pixels")
    return np.array(kp).reshape(17, 3), int(ann["num_keypoints"]), box, area


def load_coco_keypoints(root: str | Path | None = None, split: str = "val",
                        ann_file: str | Path | None = None, image_dir: str | Path | None = None,
                        min_keypoints: int = 1, check_images: bool = True,
                        max_samples: int | None = None) -> list[dict]:
    """One record per annotated person of ``split``, from ``root`` (either layout) or from
    ``ann_file`` and ``image_dir``: ``image_path``, ``image_id``, ``ann_id``, ``keypoints`` (flat
    ``[x1, y1, ...]``, pixels), ``visible`` (COCO's v per joint: 0 unlabelled, 1 occluded, 2
    visible), ``bbox`` (``[x, y, w, h]``, clipped to the image), ``area``, ``num_keypoints``,
    ``width``, ``height``, ``split``, ``source`` and ``ann_file``.

    Kept: people not crowd regions, with at least ``min_keypoints`` labelled joints and a box of
    positive size. ``check_images`` checks that every image file exists. ``max_samples`` keeps the
    people of the first images up to that many (whole images: none is split between subsets). A
    malformed entry, or a file keeping no person (counting why), raises a ``ValueError``."""
    if ann_file is None or image_dir is None:
        if root is None:
            raise ValueError("give root, or both ann_file and image_dir")
        found_ann, found_dir = find_coco_files(root, split)
        ann_file, image_dir = ann_file or found_ann, image_dir or found_dir
    ann_file, image_dir = Path(ann_file), Path(image_dir)
    if not image_dir.is_dir():
        raise DatasetNotFoundError(f"COCO image folder not found: {image_dir}. " + _HOW_TO_GET)
    data = read_dataset_json(ann_file, "COCO annotation file", _HOW_TO_GET)
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise ValueError(f"{ann_file} has no {key!r} list: it is not a COCO annotation file")
    images = {}
    for i, im in enumerate(data["images"]):
        _require(im, _IMAGE_KEYS, "images", i, ann_file)
        images[im["id"]] = im
    source = "synthetic-COCO" if (ann_file.parent.parent / "synthetic_meta.json").is_file() \
        else "COCO"
    by_image: dict[int, list[tuple[int, dict]]] = {}  # image id -> (index in file, annotation)
    for i, ann in enumerate(data["annotations"]):
        _require(ann, ("id", "image_id"), "annotations", i, ann_file)
        by_image.setdefault(ann["image_id"], []).append((i, ann))
    records = []
    dropped = {"crowd": 0, "few": 0, "box": 0}  # why people were left out, for an empty result
    for image_id in sorted(by_image):
        im = images.get(image_id)
        if im is None:
            ids = [a["id"] for _, a in by_image[image_id]][:5]
            raise ValueError(f"{ann_file}: annotation(s) {ids} refer to image_id {image_id}, "
                             "which is not in 'images'")
        w_img, h_img = im["width"], im["height"]
        people = []
        for index, ann in by_image[image_id]:
            if ann.get("iscrowd", 0):
                dropped["crowd"] += 1
                continue
            kp, num_keypoints, (x, y, w, h), area = _checked_person(ann, index, ann_file)
            if num_keypoints < min_keypoints:
                dropped["few"] += 1
                continue
            # Clip the box to the image (as MMPose does); drop boxes with nothing left.
            x0, y0 = max(0.0, x), max(0.0, y)
            x1, y1 = min(w_img - 1.0, x + max(0.0, w)), min(h_img - 1.0, y + max(0.0, h))
            if x1 <= x0 or y1 <= y0 or area <= 0:
                dropped["box"] += 1
                continue
            people.append({
                "image_path": str(image_dir / im["file_name"]), "image_id": int(image_id),
                "ann_id": int(ann["id"]), "keypoints": kp[:, :2].reshape(-1).round(3).tolist(),
                "visible": kp[:, 2].astype(int).tolist(), "bbox": [x0, y0, x1 - x0, y1 - y0],
                "area": area, "num_keypoints": num_keypoints, "width": int(w_img),
                "height": int(h_img), "split": split, "source": source, "ann_file": str(ann_file)})
        if max_samples is not None and records and len(records) + len(people) > max_samples:
            break
        records.extend(people)
    if not records:
        n = len(data["annotations"])
        why = ("it has no annotations" if not n else
               f"none of its {n} annotation(s) is usable ({dropped['crowd']} crowd region(s), "
               f"{dropped['few']} with fewer than {min_keypoints} labelled joints, "
               f"{dropped['box']} with an empty box or area)")
        raise ValueError(
            f"{ann_file}: no person kept from this file: {why}. Check that this is a "
            "person-keypoints file (person_keypoints_*.json, not instances_*.json or "
            "image_info_*.json), or lower min_keypoints.")
    if check_images:
        missing = sorted({r["image_path"] for r in records if not Path(r["image_path"]).is_file()})
        if missing:
            raise ImageReadError(
                f"{len(missing)} image file(s) referenced by {ann_file} are missing, e.g. "
                f"{missing[0]}. Re-extract the images zip into {image_dir}, or pass "
                "check_images=False to find out later which ones fail.")
    return records


def download_coco(root: str | Path, splits=("val",), keep_zip: bool = False) -> Path:
    """Download and extract COCO 2017 person keypoints into ``root`` (standard layout):
    ``annotations_trainval2017.zip`` (241 MB; only the two ``person_keypoints_*`` files are kept)
    and the image zips of ``splits``: ``val2017.zip`` (778 MB, 5,000 images) by default,
    ``train2017.zip`` (18 GB, 118,287 images) with ``splits=("val", "train")``. Extract to the
    runtime's local disk (``/content/data``): training from small files on Drive is very slow.
    COCO's annotations are CC BY 4.0; the images keep their Flickr licences."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for split in splits:
        if split not in COCO_SPLITS:
            raise ValueError(f"splits must be among {COCO_SPLITS}, got {split!r}")
    wanted = [root / "annotations" / f"person_keypoints_{s}2017.json" for s in COCO_SPLITS]
    if not all(p.is_file() for p in wanted):
        zpath = download_file(COCO_URLS["annotations"], root / "annotations_trainval2017.zip",
                              size=COCO_BYTES["annotations"], md5=COCO_MD5["annotations"])
        (root / "annotations").mkdir(exist_ok=True)
        # only the two keypoint files: they land in root/annotations/
        extract_zip(zpath, root, [f"annotations/{p.name}" for p in wanted])
        discard_archive(zpath, keep_zip)
    for split in splits:
        key = f"{split}2017"
        stamp = root / key / ".complete"
        if stamp.is_file():
            continue
        zpath = download_file(COCO_URLS[key], root / f"{key}.zip", size=COCO_BYTES[key])
        extract_zip(zpath, root)  # the zip holds the folder val2017/ (or train2017/)
        stamp.touch()
        discard_archive(zpath, keep_zip)
    return root


def coco_train_val(root: str | Path, use_train2017: bool = True, val_fraction: float = 0.2,
                   seed: int = 0, max_train: int | None = None, max_val: int | None = None,
                   log=print) -> dict:
    """The people a top-down run trains on and scores, from COCO's layout under ``root``:
    ``{"root", "train", "val", "val_ann_file", "val_image_ids", "protocol"}``. With
    ``use_train2017`` and train2017 under ``root``: train on train2017, score on val2017 (the
    official protocol, with ground-truth boxes). Otherwise val2017 is split by image
    (``val_fraction`` for scoring, the rest to train on): a course-sized experiment whose AP is
    *not* comparable to published val2017 numbers. ``max_train`` / ``max_val`` cap the number of
    people (whole images are kept together). ``val_image_ids`` are the images scored."""
    from ..splits import grouped_split

    name = "synthetic" if (Path(root) / "synthetic_meta.json").is_file() else "COCO"
    if use_train2017 and has_coco_split(root, "train"):
        train = load_coco_keypoints(root, "train", max_samples=max_train)
        val = load_coco_keypoints(root, "val", max_samples=max_val)
        protocol = f"{name} train2017 -> {name} val2017, ground-truth boxes"
    else:
        if use_train2017 and log:
            log(f"train2017 is not under {root}: splitting val2017 instead.")
        train, val = grouped_split(load_coco_keypoints(root, "val"),
                                   (1 - val_fraction, val_fraction), key="image_id", seed=seed)
        train, val = _cap(train, max_train), _cap(val, max_val)
        protocol = (f"{name} val2017 split by image ({1 - val_fraction:.0%} train / "
                    f"{val_fraction:.0%} scored), ground-truth boxes: not comparable to "
                    "published val2017 AP")
    if not train or not val:
        raise ValueError(f"no annotated people in the {'train' if not train else 'val'} part of "
                         f"{root}; generate or download more images")
    val_ann = Path(val[0]["ann_file"])
    if log:
        log(f"{protocol}\n  train: {len(train)} people in {len(coco_image_ids(train))} images\n"
            f"  val:   {len(val)} people in {len(coco_image_ids(val))} images ({val_ann})")
    return {"root": Path(root), "train": train, "val": val, "val_ann_file": val_ann,
            "val_image_ids": coco_image_ids(val), "protocol": protocol}


def _cap(records: list[dict], max_samples: int | None) -> list[dict]:
    """The first people up to ``max_samples``, keeping each image's people together."""
    if max_samples is None or len(records) <= max_samples:
        return records
    out = []
    for r in records:
        if len(out) >= max_samples and r["image_id"] != out[-1]["image_id"]:
            break
        out.append(r)
    return out
