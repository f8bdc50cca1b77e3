"""The heatmap codec: Gaussian encoding, target weights, decoding accuracy, flip test."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from handpose_utils.heatmaps import HeatmapCodec, gaussian_blur, measure_decoding_error
from handpose_utils.skeletons import COCO_FLIP_INDEX


@pytest.fixture
def codec():
    return HeatmapCodec()  # 192x256 -> 48x64, sigma 2


def _interior_keypoints(codec, n, rng, margin=4.0):
    """Random sub-pixel keypoints at least ``margin`` heatmap pixels from the border."""
    w, h = codec.heatmap_size
    hxy = np.c_[rng.uniform(margin, w - 1 - margin, n), rng.uniform(margin, h - 1 - margin, n)]
    return codec.to_input_coords(hxy)


def test_coordinate_mapping_round_trip_and_pixel_centres(codec):
    x = np.array([[-0.5, -0.5], [0.0, 0.0], [191.5, 255.5], [100.25, 7.75]])
    assert np.allclose(codec.to_input_coords(codec.to_heatmap_coords(x)), x)
    # The input's extent [-0.5, W - 0.5] maps onto the heatmap's extent [-0.5, w - 0.5].
    assert np.allclose(codec.to_heatmap_coords(np.array([-0.5, 191.5])), [-0.5, 47.5])
    # Centre of input pixels 0..3 is the centre of heatmap pixel 0.
    assert np.isclose(codec.to_heatmap_coords(np.array(1.5)), 0.0)


def test_gaussian_is_centred_at_the_exact_subpixel_position(codec):
    kp = np.array([[97.3, 121.9]] * 17)
    hm, w = codec.encode(kp, np.full(17, 2))
    assert hm.shape == (17, 64, 48) and hm.dtype == np.float32
    assert np.all(w == 1)
    ys, xs = np.mgrid[0:64, 0:48]
    m = hm[0]
    centroid = np.array([(m * xs).sum() / m.sum(), (m * ys).sum() / m.sum()])
    # No rounding of the centre: the Gaussian's centroid is the true heatmap position.
    assert np.allclose(centroid, codec.to_heatmap_coords(kp[0]), atol=1e-3)
    # The value at a grid point follows exp(-d^2 / (2 sigma^2)).
    hx, hy = codec.to_heatmap_coords(kp[0])
    gx, gy = 20, 33
    expected = np.exp(-((gx - hx) ** 2 + (gy - hy) ** 2) / (2 * 2.0**2))
    assert np.isclose(m[gy, gx], expected, rtol=1e-5)


def test_target_weights_from_visibility_and_crop(codec):
    kp = np.tile([[96.0, 128.0]], (17, 1))
    v = np.full(17, 2)
    v[0] = 0  # unlabelled
    v[1] = 1  # occluded but labelled
    kp[2] = [-10.0, 50.0]  # outside the crop
    kp[3] = [191.4, 255.4]  # just inside the last input pixel
    hm, w = codec.encode(kp, v)
    assert w[0] == 0 and not hm[0].any()
    assert w[1] == 1 and hm[1].max() > 0.9
    assert w[2] == 0 and not hm[2].any()
    assert w[3] == 1 and hm[3].max() > 0.5
    occluded_half = HeatmapCodec(occluded_weight=0.5).encode(kp, v)[1]
    assert occluded_half[1] == 0.5 and occluded_half[4] == 1.0
    # (J, 3) input with v in the last column, and boolean visibility, mean the same.
    assert np.array_equal(codec.encode(np.c_[kp, v])[1], w)
    assert np.array_equal(codec.encode(kp, v > 0)[1], (v > 0) & (w > 0))


@pytest.mark.parametrize("mode,bound,mean_bound", [("argmax", 2.0 * np.sqrt(2) + 1e-6, 1.7),
                                                    ("quarter", 1.0 * np.sqrt(2) + 1e-6, 0.9),
                                                    ("dark", 0.05, 0.01)])
def test_round_trip_error_per_decoding(codec, mode, bound, mean_bound):
    rng = np.random.default_rng(0)
    kp = _interior_keypoints(codec, 17 * 30, rng).reshape(30, 17, 2)
    maps = np.stack([codec.encode(k)[0] for k in kp])
    xy, scores = codec.decode(torch.from_numpy(maps), mode)
    assert xy.shape == (30, 17, 2) and scores.shape == (30, 17)
    err = np.linalg.norm(xy.numpy() - kp, axis=-1)
    assert err.max() <= bound
    assert err.mean() <= mean_bound
    assert torch.all(scores > 0.6)


def test_refinements_beat_plain_argmax(codec):
    errors = measure_decoding_error(codec, n=500, seed=1)
    assert errors["dark"].mean() < 0.1 * errors["quarter"].mean()
    assert errors["quarter"].mean() < 0.7 * errors["argmax"].mean()
    # Argmax error is the quantisation error: up to half a heatmap pixel per axis.
    assert errors["argmax"].max() <= codec.stride / 2 * np.sqrt(2) + 1e-6


def test_decode_accepts_single_person_and_numpy(codec):
    kp = np.array([[50.0, 60.0]] * 17)
    hm, _ = codec.encode(kp)
    xy, s = codec.decode(hm)  # (J, h, w) numpy
    assert xy.shape == (17, 2) and s.shape == (17,)
    with pytest.raises(ValueError, match="heatmaps must be"):
        codec.decode(np.zeros((64, 48)))
    with pytest.raises(ValueError, match="decode mode"):
        codec.decode(hm, "soft-argmax")


def test_codec_rejects_inconsistent_sizes():
    with pytest.raises(ValueError, match="different strides"):
        HeatmapCodec(input_size=(192, 256), heatmap_size=(48, 32))
    with pytest.raises(ValueError, match="divisible"):
        HeatmapCodec.for_input((190, 256))


def test_flip_test_maps_mirrored_heatmaps_back_exactly(codec):
    rng = np.random.default_rng(2)
    kp = _interior_keypoints(codec, 17, rng)
    v = np.full(17, 2)
    hm, _ = codec.encode(kp, v)
    mirrored, mv = codec.flip_keypoints(kp, v)
    # Left and right swap: the mirrored left shoulder is where the right shoulder's mirror is.
    assert np.allclose(mirrored[5], [codec.input_size[0] - 1 - kp[6, 0], kp[6, 1]])
    hm_mirror, _ = codec.encode(mirrored, mv)
    back = codec.flip_heatmaps(torch.from_numpy(hm_mirror)[None])[0]
    assert torch.allclose(back, torch.from_numpy(hm), atol=1e-5)
    avg = codec.flip_average(torch.from_numpy(hm)[None], torch.from_numpy(hm_mirror)[None])
    xy, _ = codec.decode(avg, "dark")
    assert np.abs(xy[0].numpy() - kp).max() < 0.05
    # SimpleBaseline's one-pixel shift would be wrong with this pixel convention: averaging with
    # a map one heatmap pixel off moves the peak by about half a pixel (2 input pixels).
    shifted = codec.flip_average(torch.from_numpy(hm)[None], torch.from_numpy(hm_mirror)[None],
                                 shift=1)
    dx = (codec.decode(shifted, "dark")[0][0].numpy() - kp)[:, 0]
    assert 1.5 < dx.mean() < 2.5


def test_flip_heatmaps_swaps_channels(codec):
    hm = torch.zeros(1, 17, 64, 48)
    hm[0, 9, 10, 5] = 1.0  # left wrist near the left edge
    out = codec.flip_heatmaps(hm)
    assert out[0, 10, 10, 42] == 1.0  # becomes the right wrist near the right edge
    assert out[0, 9].sum() == 0
    assert tuple(codec.flip_index) == COCO_FLIP_INDEX


def test_predict_heatmaps_flip_test_with_a_symmetric_model(codec):
    # A "model" that encodes the same centred person for any input: its flip test must agree.
    kp = np.array([[95.5, 127.5]] * 17)  # the crop's centre column: its own mirror image
    hm = torch.from_numpy(codec.encode(kp)[0])

    class Fixed(torch.nn.Module):
        def forward(self, x):
            return hm.expand(x.shape[0], -1, -1, -1)

    out = codec.predict_heatmaps(Fixed(), torch.zeros(2, 3, 256, 192), flip_test=True)
    assert torch.allclose(out, hm.expand(2, -1, -1, -1), atol=1e-6)


def test_gaussian_blur_keeps_the_peak_height():
    x = torch.zeros(1, 2, 20, 16)
    x[0, 0, 10, 8] = 0.8
    x[0, 1, 3, 3] = 0.5
    y = gaussian_blur(x, 11)
    assert torch.allclose(y.amax(dim=(2, 3)), torch.tensor([[0.8, 0.5]]), atol=1e-6)
    assert y[0, 0, 10, 8] == y[0, 0].max() and y[0, 0, 10, 12] > 0
    with pytest.raises(ValueError, match="odd"):
        gaussian_blur(x, 10)


def test_flip_shift_copies_the_edge_column_instead_of_wrapping_round():
    import torch

    from handpose_utils.heatmaps import HeatmapCodec

    codec = HeatmapCodec(flip_index=(0,))
    maps = torch.arange(5.0).view(1, 1, 1, 5)  # mirrored: 4 3 2 1 0
    assert codec.flip_heatmaps(maps, 1).flatten().tolist() == [4, 4, 3, 2, 1]
    assert codec.flip_heatmaps(maps, -1).flatten().tolist() == [3, 2, 1, 0, 0]
    assert codec.flip_heatmaps(maps, 0).flatten().tolist() == [4, 3, 2, 1, 0]
