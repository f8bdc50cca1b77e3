"""Notebook 08's code (handpose_utils/capstone.py, generated from its #@save cells): the crop that
brings real images to the training framing, the real-data readers, the three heads, scoring with
misses, the appearance augmentation; and the notebook itself run on the real samples."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from conftest import execute_notebook

from handpose_utils import capstone
from handpose_utils.data import DeviceAugment
from handpose_utils.models_heatmap import KeypointMSELoss

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "08_real_hands_capstone.ipynb"


def test_hand_box_is_square_centred_on_the_visible_joints():
    kp = np.array([[10.0, 20.0], [30.0, 60.0], [0.0, 0.0]])
    x0, y0, side = capstone.hand_box(kp, [True, True, False], scale=1.5)
    assert side == 60 and isinstance(side, int)  # ceil(1.5 * 40): the (0, 0) joint is left out
    assert (x0 + side / 2, y0 + side / 2) == (20.0, 40.0)
    with pytest.raises(ValueError, match="at least 2 visible"):
        capstone.hand_box(kp, [True, False, False])


def test_to_hand_crop_matches_the_pixels_of_crop_image():
    # A bright spot at a sub-pixel position lands, in the crop, where to_hand_crop says it does.
    h = w = 120
    ys, xs = np.mgrid[:h, :w]
    point = np.array([47.3, 61.8])
    spot = np.exp(-((xs - point[0]) ** 2 + (ys - point[1]) ** 2) / (2 * 2.0**2))
    image = np.repeat((spot * 255).astype(np.uint8)[..., None], 3, axis=2)
    box = (20.4, 33.7, 48)
    crop = capstone.crop_image(image, box, 96).astype(float)[..., 0]
    crop -= np.median(crop)  # the border would add mean colour; none is in this box
    cy, cx = np.mgrid[:96, :96]
    centroid = np.array([(crop * cx).sum(), (crop * cy).sum()]) / crop.sum()
    assert np.allclose(centroid, capstone.to_hand_crop(point, box, 96), atol=0.15)
    assert np.allclose(capstone.from_hand_crop(capstone.to_hand_crop(point, box, 96), box, 96), point)


def test_crop_outside_the_image_gets_the_mean_colour():
    image = np.zeros((50, 50, 3), np.uint8)
    crop = capstone.crop_image(image, (-40.0, -40.0, 60), 30)
    assert tuple(crop[0, 0]) == capstone.MEAN_COLOUR and tuple(crop[-1, -1]) == (0, 0, 0)


def test_gaussian_targets_match_the_codec_and_decode_back():
    codec = capstone.hand_codec(64, sigma=1.5)
    kp = torch.rand(3, 21, 2) * 40 + 12  # inside the map: DARK needs the pixels around a peak
    kp[0, 5] = torch.tensor([-30.0, 10.0])  # off the map: weight 0, empty map
    maps, weight = capstone.gaussian_targets(kp, codec)
    for i in range(3):
        ref_maps, ref_weight = codec.encode(kp[i].numpy())
        assert np.allclose(maps[i].numpy(), ref_maps, atol=1e-5)
        assert np.array_equal(weight[i].numpy(), ref_weight)
    decoded, _ = codec.decode(maps)
    ok = weight.bool()
    assert float((decoded - kp).norm(dim=-1)[ok].max()) < 0.3
    loss = KeypointMSELoss()(maps, (maps, weight))  # the loss the heatmap head trains with
    assert float(loss) == 0.0


def test_the_three_heads_share_the_body_and_give_their_outputs():
    x = torch.randn(2, 3, 64, 64)
    direct, heat = capstone.UNetDirect(width=8).eval(), capstone.UNetHeatmap(width=8).eval()
    assert direct(x).shape == (2, 42)
    assert heat(x).shape == (2, 21, 16, 16)
    assert not hasattr(direct, "up4")  # unused decoder removed: no dead parameters


def test_score_points_counts_misses_as_wrong():
    gt = torch.zeros(4, 21, 2)
    pred = gt + 3.0  # 4.24 px off: within 11.2 px
    pred[1] = float("nan")  # no hand found
    s = capstone.score_points(pred, gt, frame=224)
    assert s["PCK@0.05"] == pytest.approx(0.75) and s["detected"] == pytest.approx(0.75)
    assert s["EPE px"] == pytest.approx(np.hypot(3, 3), rel=1e-5)  # over the found images
    assert s["AUC"] < 1.0
    vis = torch.ones(4, 21, dtype=torch.bool)
    vis[:, :10] = False
    assert capstone.score_points(pred, gt, vis)["PCK@0.05"] == pytest.approx(0.75)
    # no labelled joint: undefined, NaN as in hp.metrics (0 would read as "all wrong")
    none = capstone.score_points(pred, gt, torch.zeros(4, 21, dtype=torch.bool))
    assert all(np.isnan(none[k]) for k in ("PCK@0.05", "AUC", "EPE px"))


def test_appearance_augment_keeps_the_geometry():
    images = torch.randint(0, 255, (4, 3, 32, 32), dtype=torch.uint8)
    kp = torch.rand(4, 21, 2) * 32
    plain = DeviceAugment(flip_p=0.5).train()
    strong = capstone.AppearanceAugment(flip_p=0.5).train()
    x1, k1 = plain(images, kp, generator=torch.Generator().manual_seed(0))
    x2, k2 = strong(images, kp, generator=torch.Generator().manual_seed(0))
    assert torch.equal(k1, k2)  # the same affine draws: keypoints untouched by appearance
    assert torch.isfinite(x2).all() and not torch.allclose(x1, x2)


def test_load_real_hands_reads_every_native_layout(realdata):
    samples = capstone.load_real_hands(realdata)
    by_source = {s: [x for x in samples if x["source"] == s] for s in capstone.REAL_SOURCES}
    assert {s: len(v) for s, v in by_source.items()} == {"freihand": 8, "rhd": 3, "onehand10k": 4}
    assert len({x["group"] for x in by_source["freihand"]}) == 2  # 2 poses x 4 versions
    expected = json.loads((realdata / "freihand" / "expected_uv.json").read_text())
    first = np.asarray(expected[0] if isinstance(expected, list) else expected["0"], float)
    assert np.allclose(by_source["freihand"][0]["keypoints"], first, atol=1e-3)
    oh = by_source["onehand10k"][0]
    assert oh["keypoints"].shape == (21, 2) and not oh["visible"][0]  # 9.jpg: no wrist label
    box = capstone.hand_box(oh["keypoints"], oh["visible"], 1.5)
    cache = capstone.crop_cache([oh], [box], 64, 224)
    assert cache.images.shape == (1, 64, 64, 3) and cache.orig_size.tolist() == [[224, 224]]
    limited = capstone.load_real_hands(realdata, max_per_source=4)
    fh = [x for x in limited if x["source"] == "freihand"]
    assert len(fh) == 4 and len({x["group"] for x in fh}) == 1  # whole groups only


def test_load_real_hands_fails_loudly(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        capstone.load_real_hands(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no real hand data"):
        capstone.load_real_hands(tmp_path)
    oh = tmp_path / "onehand10k"
    (oh / "images").mkdir(parents=True)
    (oh / "annotations.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "1.jpg", "width": 10, "height": 10}],
        "annotations": [{"id": 7, "image_id": 1, "keypoints": [0] * 60}]}))
    with pytest.raises(ValueError, match="annotation 7 needs 63"):
        capstone.load_real_hands(tmp_path)


@pytest.mark.notebook
def test_notebook_runs_on_the_real_samples(realdata, tmp_path):
    """The smoke run of tests/test_notebooks.py has no real images; this one points REAL_DIR at
    ../shared/realdata, so the real-image tables, the fine-tuning and the photo run too."""

    nb = nbformat.read(NOTEBOOK, as_version=4)
    params = next(c for c in nb.cells if c.cell_type == "code" and "REAL_DIR = None" in c.source)
    params.source = params.source.replace("REAL_DIR = None", f"REAL_DIR = {str(realdata)!r}", 1)
    execute_notebook(nb, NOTEBOOK, tmp_path / "data")
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "onehand10k" in text and "real photos: 12 images" in text  # 8 FreiHAND + 4 OneHand10K
    assert "RHD, rendered (3)" in text  # the other renderer, scored on its own
    assert "held out:" in text and "before -> after" in text
    assert "framing k: plain renderer" in text  # section 9 crops the photos at each renderer's k
