"""The COCO reader (standard and FiftyOne layouts, real sample) and the synthetic COCO generator."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

import handpose_utils as hp
from handpose_utils.datasets.coco import find_coco_files
from handpose_utils.datasets.freihand import DatasetNotFoundError
from handpose_utils.prepare.coco import prepare_coco
from handpose_utils.synthetic.coco import (
    COCO_GENERATOR_VERSION,
    ensure_synthetic_coco,
    mask_to_polygons,
    render_coco_image,
)


@pytest.fixture(scope="module")
def synthetic_coco(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco") / "synthetic_coco"
    return ensure_synthetic_coco(root, n_train=6, n_val=3, seed=5, width=160, height=128,
                                    progress=False)


# --------------------------------------------------------------------------------------------
# Reader, on the real val2017 sample


@pytest.mark.realdata
def test_every_annotated_person_becomes_a_sample(realdata):
    records = hp.load_coco_keypoints(realdata / "coco", "val")
    data = json.loads((realdata / "coco/annotations/person_keypoints_val2017.json").read_text())
    wanted = [a for a in data["annotations"] if not a["iscrowd"] and a["num_keypoints"] > 0]
    assert len(records) == len(wanted) == 12
    assert {r["ann_id"] for r in records} == {a["id"] for a in wanted}
    # Several people per image are all kept (the reference kept only the first one).
    per_image = {}
    for r in records:
        per_image[r["image_id"]] = per_image.get(r["image_id"], 0) + 1
    assert per_image[197388] == 5
    r = next(r for r in records if r["ann_id"] == 442619)
    ann = next(a for a in wanted if a["id"] == 442619)
    kp = np.asarray(ann["keypoints"]).reshape(-1, 3)
    assert np.allclose(np.asarray(r["keypoints"]).reshape(-1, 2), kp[:, :2])
    assert r["visible"] == kp[:, 2].tolist()
    assert r["image_path"].endswith("val2017/000000000785.jpg") and os.path.isfile(r["image_path"])
    assert (r["width"], r["height"], r["source"]) == (640, 425, "COCO")
    # Boxes are clipped to the image: one annotation starts at x = 0.5.
    for r in records:
        x, y, w, h = r["bbox"]
        assert x >= 0 and y >= 0 and x + w <= r["width"] and y + h <= r["height"]


@pytest.mark.realdata
def test_fiftyone_layout_reads_the_same(realdata, tmp_path):
    src = realdata / "coco"
    (tmp_path / "raw").mkdir()
    (tmp_path / "validation" / "data").mkdir(parents=True)
    os.symlink(src / "annotations" / "person_keypoints_val2017.json",
               tmp_path / "raw" / "person_keypoints_val2017.json")
    for img in (src / "val2017").iterdir():
        os.symlink(img, tmp_path / "validation" / "data" / img.name)
    ann, images = find_coco_files(tmp_path, "val")
    assert ann == tmp_path / "raw" / "person_keypoints_val2017.json"
    assert images == tmp_path / "validation" / "data"
    fo = hp.load_coco_keypoints(tmp_path, "val")
    std = hp.load_coco_keypoints(src, "val")
    strip = lambda rs: [{k: v for k, v in r.items() if k not in ("image_path", "ann_file")}
                        for r in rs]
    assert strip(fo) == strip(std)


@pytest.mark.realdata
def test_max_samples_keeps_whole_images(realdata):
    records = hp.load_coco_keypoints(realdata / "coco", "val", max_samples=4)
    ids = [r["image_id"] for r in records]
    everything = hp.load_coco_keypoints(realdata / "coco", "val")
    for i in set(ids):
        assert ids.count(i) == sum(r["image_id"] == i for r in everything)
    assert len(records) <= 4


def test_missing_dataset_names_the_paths(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        hp.load_coco_keypoints(tmp_path / "coco", "val")
    msg = str(info.value)
    assert "person_keypoints_val2017.json" in msg and "validation/data" in msg
    assert "download_coco" in msg and "778 MB" in msg
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "person_keypoints_train2017.json").write_text("{}")
    with pytest.raises(DatasetNotFoundError, match="train2017"):
        find_coco_files(tmp_path, "train")


def test_missing_image_is_named(synthetic_coco, tmp_path):
    ann, images = find_coco_files(synthetic_coco, "val")
    records = hp.load_coco_keypoints(synthetic_coco, "val")
    victim = records[0]["image_path"]
    # Copy the layout with one image left out.
    (tmp_path / "annotations").mkdir()
    os.symlink(ann, tmp_path / "annotations" / ann.name)
    (tmp_path / "val2017").mkdir()
    for img in images.iterdir():
        if str(img) != victim:
            os.symlink(img, tmp_path / "val2017" / img.name)
    with pytest.raises(hp.images.ImageReadError, match=os.path.basename(victim)):
        hp.load_coco_keypoints(tmp_path, "val")


# --------------------------------------------------------------------------------------------
# Synthetic generator


def test_synthetic_json_is_valid_coco(synthetic_coco):
    meta = json.loads((synthetic_coco / "synthetic_meta.json").read_text())
    assert meta["generator_version"] == COCO_GENERATOR_VERSION
    for split in ("train", "val"):
        data = json.loads((synthetic_coco / "annotations" /
                           f"person_keypoints_{split}2017.json").read_text())
        assert data["categories"] == [hp.skeletons.coco_category()]
        assert len(data["images"]) == meta[f"n_{split}"]
        ids = [im["id"] for im in data["images"]]
        assert len(set(ids)) == len(ids)
        for im in data["images"]:
            assert (synthetic_coco / f"{split}2017" / im["file_name"]).is_file()
            assert (im["width"], im["height"]) == (160, 128)
        ann_ids = [a["id"] for a in data["annotations"]]
        assert len(set(ann_ids)) == len(ann_ids)
        for a in data["annotations"]:
            assert set(a) >= {"id", "image_id", "category_id", "keypoints", "num_keypoints",
                              "bbox", "area", "iscrowd", "segmentation"}
            kp = np.asarray(a["keypoints"], float).reshape(17, 3)
            v = kp[:, 2]
            assert set(np.unique(v)) <= {0, 1, 2}
            assert a["num_keypoints"] == int((v > 0).sum())
            assert np.all(kp[v == 0, :2] == 0)  # COCO: unlabelled joints are (0, 0, 0)
            x, y, w, h = a["bbox"]
            assert w > 0 and h > 0 and a["area"] > 0 and a["iscrowd"] == 0
            inside = kp[v > 0, :2]
            assert np.all((inside >= -0.5) & (inside <= [159.5, 127.5]))
            # Visible joints lie on the person's visible pixels, so inside the box.
            seen = kp[v == 2, :2]
            assert np.all((seen >= [x - 1.5, y - 1.5]) & (seen <= [x + w + 1.5, y + h + 1.5]))
            assert a["segmentation"] and all(len(p) >= 6 and len(p) % 2 == 0
                                             for p in a["segmentation"])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools' numpy-2 warning
def test_synthetic_masks_polygons_and_visibility_are_consistent(synthetic_coco):
    from pycocotools import mask as mask_utils

    coco = hp.coco_eval.load_coco_gt(synthetic_coco / "annotations" /
                                     "person_keypoints_train2017.json")
    anns = coco.loadAnns(coco.getAnnIds())
    ious = []
    for a in anns:
        im = coco.loadImgs(a["image_id"])[0]
        rle = mask_utils.frPyObjects(a["segmentation"], im["height"], im["width"])
        m = mask_utils.decode(mask_utils.merge(rle))
        ious.append(abs(int(m.sum()) - a["area"]) / a["area"])
    assert np.median(ious) < 0.2  # the polygons trace the visible pixels the area counts
    v = np.concatenate([np.asarray(a["keypoints"]).reshape(-1, 3)[:, 2] for a in anns])
    assert (v == 2).any() and (v == 1).any()  # both visible and occluded joints occur


def test_synthetic_ground_truth_scores_ap_one(synthetic_coco):
    ann = synthetic_coco / "annotations" / "person_keypoints_val2017.json"
    stats = hp.coco_eval.evaluate_coco_keypoints(ann, hp.coco_eval.ground_truth_results(ann))
    assert stats["AP"] == pytest.approx(1.0)


def test_render_is_reproducible_and_varied():
    a = render_coco_image(1, "train", 4, 96, 80)
    b = render_coco_image(1, "train", 4, 96, 80)
    c = render_coco_image(1, "train", 5, 96, 80)
    assert np.array_equal(a["image"], b["image"])
    assert not np.array_equal(a["image"], c["image"])
    assert all(np.array_equal(p["keypoints"], q["keypoints"])
               for p, q in zip(a["people"], b["people"]))


def test_out_of_frame_joints_are_unlabelled():
    found = 0
    for idx in range(40):
        out = render_coco_image(0, "train", idx, 160, 128)
        for p in out["people"]:
            kp = p["keypoints"]
            if (kp[:, 2] == 0).any() and (kp[:, 2] > 0).sum() >= 3:
                found += 1
                assert np.all(kp[kp[:, 2] == 0, :2] == 0)
        if found >= 3:
            break
    assert found >= 3


def test_mask_to_polygons_traces_the_outline():
    m = np.zeros((20, 30), bool)
    m[4:10, 5:15] = True
    m[12:18, 20:28] = True
    polys = mask_to_polygons(m)
    assert len(polys) == 2
    xs = np.asarray(polys[0]).reshape(-1, 2)
    # Pixel edges sit half a pixel from the centres; straight runs are reduced to corners.
    assert xs[:, 0].min() == pytest.approx(4.5, abs=0.51) and len(xs) <= 8


def test_ensure_is_idempotent_and_regenerates_on_new_settings(synthetic_coco, tmp_path):
    stamp = synthetic_coco / "synthetic_meta.json"
    before = stamp.stat().st_mtime_ns
    again = ensure_synthetic_coco(synthetic_coco, n_train=6, n_val=3, seed=5, width=160,
                                     height=128, progress=False)
    assert again == synthetic_coco and stamp.stat().st_mtime_ns == before
    root = tmp_path / "other"
    ensure_synthetic_coco(root, n_train=2, n_val=1, seed=0, width=64, height=64,
                             progress=False)
    ensure_synthetic_coco(root, n_train=3, n_val=1, seed=0, width=64, height=64,
                             progress=False)
    meta = json.loads((root / "synthetic_meta.json").read_text())
    assert meta["n_train"] == 3
    assert not list(tmp_path.glob(".other.*.tmp"))  # no temporary folders left behind


def test_prepare_coco_synthetic_and_missing_real(synthetic_coco, tmp_path):
    data = prepare_coco("synthetic", synthetic_coco.parent, n_train=6, n_val=3, seed=5,
                        width=160, height=128, progress=False, log=None)
    assert data["val_ann_file"].name == "person_keypoints_val2017.json"
    assert data["val_image_ids"] == sorted({r["image_id"] for r in data["val"]})
    with pytest.raises(DatasetNotFoundError, match="DOWNLOAD = True"):
        prepare_coco("coco", tmp_path, log=None)


@pytest.mark.realdata
def test_prepare_coco_splits_val2017_by_image(realdata, tmp_path):
    os.symlink(realdata / "coco", tmp_path / "coco")
    data = prepare_coco("coco", tmp_path, val_fraction=0.5, log=None)
    train_ids = {r["image_id"] for r in data["train"]}
    assert train_ids.isdisjoint(data["val_image_ids"])
    assert len(data["train"]) + len(data["val"]) == 12
    assert "not comparable" in data["protocol"]


# --------------------------------------------------------------------------------------------
# Malformed annotation files fail loudly, naming the file, the entry and what is wrong


def _tiny_coco(tmp_path, edit=None):
    """One 64 x 48 image with one person (annotation id 7), in the standard layout; ``edit``
    changes the JSON content before it is written."""
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "val2017").mkdir()
    Image.new("RGB", (64, 48), (120, 80, 40)).save(root / "val2017" / "000000000001.jpg")
    data = {
        "images": [{"id": 1, "file_name": "000000000001.jpg", "width": 64, "height": 48}],
        "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "iscrowd": 0,
                         "keypoints": [20, 20, 2] * 16 + [30, 25, 1], "num_keypoints": 17,
                         "bbox": [10.0, 5.0, 30.0, 35.0], "area": 600.0}],
        "categories": [hp.skeletons.coco_category()],
    }
    if edit is not None:
        edit(data)
    (root / "annotations" / "person_keypoints_val2017.json").write_text(json.dumps(data))
    return root


def _ann(data):
    return data["annotations"][0]


def test_tiny_coco_reads(tmp_path):
    (r,) = hp.load_coco_keypoints(_tiny_coco(tmp_path), "val")
    assert r["ann_id"] == 7 and r["visible"][-1] == 1 and r["bbox"] == [10.0, 5.0, 30.0, 35.0]


@pytest.mark.parametrize("bbox", [[10.0, float("nan"), 30.0, 35.0], [10.0, 5.0, 30.0],
                                  [10.0, 5.0, "wide", 35.0]])
def test_unusable_bbox_names_the_annotation(tmp_path, bbox):
    root = _tiny_coco(tmp_path, lambda d: _ann(d).update(bbox=bbox))
    with pytest.raises(ValueError, match=r"person_keypoints_val2017\.json: annotation 7 "
                                         r"\(image 1\).*bbox"):
        hp.load_coco_keypoints(root, "val")


@pytest.mark.parametrize("v", [-1, 7, 1.5])
def test_visibility_outside_0_1_2_is_rejected(tmp_path, v):
    def edit(d):
        _ann(d)["keypoints"][3 * 4 + 2] = v  # joint 4
    with pytest.raises(ValueError, match=rf"annotation 7 .*joint\(s\) \[4\].*{v}.*0, 1 or 2"):
        hp.load_coco_keypoints(_tiny_coco(tmp_path, edit), "val")


def test_wrong_number_of_keypoint_values_is_explained(tmp_path):
    root = _tiny_coco(tmp_path, lambda d: _ann(d)["keypoints"].append(0))
    with pytest.raises(ValueError, match=r"annotation 7 .*52 keypoint values.*51 = 17 x 3"):
        hp.load_coco_keypoints(root, "val")


@pytest.mark.parametrize("where,key", [
    ("annotations", "bbox"), ("annotations", "id"), ("annotations", "image_id"),
    ("annotations", "keypoints"), ("images", "width"), ("images", "height"), ("images", "id"),
    ("images", "file_name"),
])
def test_missing_key_names_the_entry_and_the_key(tmp_path, where, key):
    root = _tiny_coco(tmp_path, lambda d: d[where][0].pop(key))
    with pytest.raises(ValueError, match=rf"person_keypoints_val2017\.json: {where}\[0\].*"
                                         rf"no '{key}'"):
        hp.load_coco_keypoints(root, "val")


def test_missing_num_keypoints_is_explained(tmp_path):
    root = _tiny_coco(tmp_path, lambda d: _ann(d).pop("num_keypoints"))
    with pytest.raises(ValueError, match=r"annotation 7 .*no 'num_keypoints'.*v > 0"):
        hp.load_coco_keypoints(root, "val")


def test_no_person_kept_from_a_non_empty_file_is_explained(tmp_path):
    root = _tiny_coco(tmp_path, lambda d: _ann(d).update(iscrowd=1))
    with pytest.raises(ValueError, match=r"none of its 1 annotation.*1 crowd"):
        hp.load_coco_keypoints(root, "val")
    root = _tiny_coco(tmp_path / "b")
    with pytest.raises(ValueError, match=r"1 with fewer than 18 labelled joints"):
        hp.load_coco_keypoints(root, "val", min_keypoints=18)
