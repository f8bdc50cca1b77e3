"""RHD: depth/mask codecs, the reader on real samples and on generated data, the generator."""

import json
import pickle
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from handpose_utils import load_rhd, make_rhd
from handpose_utils.camera import project
from handpose_utils.datasets.freihand import DatasetNotFoundError
from handpose_utils.datasets.rhd import (
    decode_depth,
    encode_depth,
    hand_pixel_counts,
    read_depth,
    read_mask,
    read_rhd_annotations,
)
from handpose_utils.hand3d import RHDSamples
from handpose_utils.skeletons import RHD_TO_HAND21
from handpose_utils.synthetic.rhd import ensure_synthetic_rhd


@pytest.fixture(scope="module")
def rhd_root(tmp_path_factory):
    """A small synthetic RHD: 10 training and 3 evaluation images of 96 px."""
    root = tmp_path_factory.mktemp("rhd") / "synthetic_rhd"
    return make_rhd(root, n_train=10, n_eval=3, seed=5, image_size=96, progress=False)


def test_depth_round_trip_and_uint8_overflow():
    rng = np.random.default_rng(0)
    d = rng.uniform(0, 5, (7, 9)).astype(np.float32)
    d[0, 0], d[0, 1] = 0.0, 5.0
    back = decode_depth(encode_depth(d))
    assert np.abs(back - d).max() <= 5 / 65535 / 2 + 1e-6  # half a quantisation step
    # High bytes >= 1 overflow if shifted as uint8; decoding must widen first.
    rgb = np.zeros((1, 2, 3), np.uint8)
    rgb[0, 0] = [255, 255, 0]
    rgb[0, 1] = [23, 7, 0]
    np.testing.assert_allclose(decode_depth(rgb)[0], [5.0, (23 * 256 + 7) / 65535 * 5], rtol=1e-6)
    assert encode_depth(np.array([[np.inf, -1.0]]))[0].tolist() == [[255, 255, 0], [0, 0, 0]]


@pytest.mark.realdata
def test_real_rhd_samples(realdata):
    root = realdata / "rhd"  # the reader also accepts the parent of RHD_published_v2
    recs = load_rhd(root, "training")
    assert [r["sample_id"] for r in recs] == [111, 1111, 11111]
    assert [r["hand_side"] for r in recs] == ["left", "left", "right"]
    anno = read_rhd_annotations(root, "training")
    for r in recs:
        a = anno[r["sample_id"]]
        sl = slice(0, 21) if r["hand_side"] == "left" else slice(21, 42)
        uv = a["uv_vis"][sl, :2][list(RHD_TO_HAND21)]
        np.testing.assert_allclose(np.reshape(r["keypoints"], (21, 2)), uv, atol=1e-3)
        np.testing.assert_allclose(r["xyz"], a["xyz"][sl][list(RHD_TO_HAND21)], atol=1e-6)
        assert r["visible"] == [1] * 21  # the labelled hand; the other hand's copy has vis 0
        # Wrist first, then each finger palm -> tip: the thumb tip is the last thumb joint.
        assert np.allclose(r["xyz"][4], a["xyz"][sl][1]) and np.allclose(r["xyz"][0], a["xyz"][sl][0])
        # Real K and xyz: the uv are their projection (to annotation rounding).
        np.testing.assert_allclose(project(r["xyz"], r["K"]), np.reshape(r["keypoints"], (21, 2)),
                                   atol=0.2)
        assert 0.005 < r["scale"] < 0.06 and r["width"] == r["height"] == 320
        left, right = r["hand_pixels"]
        assert (left > right) == (r["hand_side"] == "left")
        depth = read_depth(r["depth_path"])  # placeholder content, real encoding
        assert depth.shape == (320, 320) and 0 < depth.min() <= depth.max() < 5
    item = RHDSamples(recs)[2]  # what the training code sees
    assert item["image"].shape == (3, 320, 320) and item["image"].dtype == torch.uint8
    assert item["hand_side"] == 1 and (item["mask"] >= 18).sum() == recs[2]["hand_pixels"][1]


def test_reader_on_generated_data(rhd_root):
    recs = load_rhd(rhd_root)
    ev = load_rhd(rhd_root, "evaluation")
    assert len(recs) == 10 and len(ev) == 3 and recs[0]["source"] == "synthetic-RHD"
    meta = json.load(open(rhd_root / "synthetic_meta.json"))
    for r, sides in zip(recs, meta["hands"]["training"]):
        mask = read_mask(r["mask_path"])
        assert mask.shape == (96, 96) and mask.max() <= 33
        left, right = hand_pixel_counts(mask)
        assert r["hand_pixels"] == [left, right]
        assert r["hand_side"] == ("left" if left > right else "right")
        assert r["hand_side"] in sides  # the dominant hand is one that is in the picture
        uv = np.reshape(r["keypoints"], (21, 2))
        np.testing.assert_allclose(project(r["xyz"], r["K"]), uv, atol=1e-2)
        vis = np.array(r["visible"], bool)
        assert vis.any() and ((uv[vis] >= -0.5) & (uv[vis] <= 95.5)).all()
        ids = set(np.unique(mask).tolist())
        hand_ids = set(range(2, 18)) if r["hand_side"] == "left" else set(range(18, 34))
        assert 16 + (1 if r["hand_side"] == "left" else 17) in ids  # the palm
        assert ids & hand_ids
    # Evaluation has its own pickle (the reference always read the training one).
    assert read_rhd_annotations(rhd_root, "evaluation").keys() == {0, 1, 2}
    assert ev[0]["image_path"] != recs[0]["image_path"] and "evaluation" in ev[0]["image_path"]


def test_generated_layout_is_rhd(rhd_root):
    anno = pickle.load(open(rhd_root / "training" / "anno_training.pickle", "rb"))
    assert set(anno) == set(range(10))
    e = anno[0]
    assert e["xyz"].shape == (42, 3) and e["uv_vis"].shape == (42, 3) and e["K"].shape == (3, 3)
    uv = e["xyz"] @ e["K"].T
    np.testing.assert_allclose(uv[:, :2] / uv[:, 2:], e["uv_vis"][:, :2], atol=1e-2)
    assert Image.open(rhd_root / "training" / "mask" / "00000.png").mode == "L"
    assert Image.open(rhd_root / "training" / "depth" / "00000.png").mode == "RGB"
    meta = json.load(open(rhd_root / "synthetic_meta.json"))
    for sides, (_, entry) in zip(meta["hands"]["training"], sorted(anno.items())):
        for side, sl in (("left", slice(0, 21)), ("right", slice(21, 42))):
            if side not in sides:  # annotated but out of the picture: invisible, outside
                assert entry["uv_vis"][sl, 2].sum() == 0
                u = entry["uv_vis"][sl, 0]
                assert ((u < 0) | (u > 95)).all()
    hand = read_depth(rhd_root / "training" / "depth" / "00000.png")
    mask = read_mask(rhd_root / "training" / "mask" / "00000.png")
    assert hand[mask > 1].max() < hand[mask == 0].min()  # hands in front of the background


def test_generation_is_reproducible(tmp_path, rhd_root):
    other = make_rhd(tmp_path / "again", n_train=2, n_eval=1, seed=5, image_size=96,
                     progress=False)
    for name in ("color/00001.png", "mask/00001.png", "depth/00001.png"):
        a = np.asarray(Image.open(rhd_root / "training" / name))
        b = np.asarray(Image.open(other / "training" / name))
        assert np.array_equal(a, b), name


def test_ensure_reuses_or_regenerates(tmp_path):
    root = tmp_path / "synthetic_rhd"
    ensure_synthetic_rhd(root, 3, n_eval=2, image_size=48, progress=False)
    stamp = (root / "synthetic_meta.json").stat().st_mtime_ns
    ensure_synthetic_rhd(root, 3, n_eval=2, image_size=48, progress=False)
    assert (root / "synthetic_meta.json").stat().st_mtime_ns == stamp  # reused
    ensure_synthetic_rhd(root, 4, n_eval=2, image_size=48, progress=False)
    assert len(load_rhd(root)) == 4  # other settings: regenerated in place
    assert not list(tmp_path.glob(".synthetic_rhd.*.tmp"))  # no temporary folders left behind


def test_missing_files_are_named(tmp_path, rhd_root):
    with pytest.raises(DatasetNotFoundError, match=r"anno_training\.pickle.*download_rhd"):
        load_rhd(tmp_path / "nowhere")
    root = tmp_path / "copy"
    shutil.copytree(rhd_root, root)
    (root / "training" / "mask" / "00004.png").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"mask file of sample 4.*00004\.png"):
        load_rhd(root)
    shutil.copy(rhd_root / "training" / "mask" / "00004.png", root / "training" / "mask")
    assert len(load_rhd(root)) == 10
    (root / "training" / "color" / "00007.png").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"color file of sample 7"):
        load_rhd(root)


def test_malformed_annotations_are_named(tmp_path, rhd_root):
    root = tmp_path / "bad"
    shutil.copytree(rhd_root, root)
    path = root / "training" / "anno_training.pickle"
    anno = pickle.load(open(path, "rb"))
    anno[3]["xyz"] = anno[3]["xyz"][:21]
    pickle.dump(anno, open(path, "wb"))
    with pytest.raises(ValueError, match=r"sample 3: 'xyz' has shape \(21, 3\)"):
        load_rhd(root)
    path.write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="not a readable pickle"):
        load_rhd(root)


@pytest.mark.parametrize("kind,size", [("color", (64, 64)), ("mask", (96, 80)),
                                       ("depth", (48, 48))])
def test_image_of_another_size_is_named(tmp_path, rhd_root, kind, size):
    """One file of another size used to surface only in the DataLoader, as torch.stack's
    "stack expects each tensor to be equal size", naming no file."""
    root = tmp_path / "odd"
    shutil.copytree(rhd_root, root)
    path = root / "training" / kind / "00003.png"
    with Image.open(path) as im:
        im.resize(size, Image.NEAREST).save(path)  # NEAREST keeps mask ids
    w, h = size
    with pytest.raises(ValueError, match=rf"{kind} file of sample 3.*00003\.png.*{w} x {h}.*"
                                         r"96 x 96"):
        load_rhd(root)


def test_samples_check_image_and_mask_sizes(tmp_path, rhd_root):
    """Records read before a file changed (or with check_images=False) are checked again when
    the sample is decoded."""
    root = tmp_path / "later"
    shutil.copytree(rhd_root, root)
    recs = load_rhd(root)
    for kind in ("color", "mask"):
        path = root / "training" / kind / "00004.png"
        with Image.open(path) as im:
            im.resize((50, 40), Image.NEAREST).save(path)  # NEAREST keeps mask ids
        with pytest.raises(ValueError, match=r"00004\.png.*sample 4.*50 x 40.*96 x 96"):
            RHDSamples(recs, load_images=kind == "color", load_masks=kind == "mask")[4]
        shutil.copy(rhd_root / "training" / kind / "00004.png", path)
    assert RHDSamples(recs)[4]["image"].shape == (3, 96, 96)


def test_pickle_warning_and_unloadable_pickle_is_named(tmp_path, rhd_root):
    # Loading a pickle runs code: the reader's documentation tells the learner which to trust.
    for doc in (read_rhd_annotations.__doc__, load_rhd.__doc__):
        assert "pickle" in doc and "official" in doc and "run" in doc
    root = tmp_path / "bad"
    shutil.copytree(rhd_root, root)
    path = root / "training" / "anno_training.pickle"
    # A pickle that refers to a module this Python lacks (e.g. written by a newer NumPy).
    path.write_bytes(b"\x80\x03cno_such_module_here\nthing\nq\x00.")
    with pytest.raises(ValueError, match=r"anno_training\.pickle.*no_such_module_here"):
        read_rhd_annotations(root)
