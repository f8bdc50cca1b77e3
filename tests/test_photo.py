"""Camera effects on composited renders: each switch does its own thing and nothing else."""

import numpy as np
import pytest

from handpose_utils.synthetic.photo import camera_effects, jpeg_quality

EFFECTS = ("white_balance", "vignette", "defocus", "motion_blur", "noise")


def _only(name):
    return {e: e == name for e in EFFECTS}


def _texture(h=48, w=72, seed=0):
    """Random pixels, smoothed a little so that blur has structure to remove, kept in 0.1..0.6."""
    x = np.random.default_rng(seed).random((h, w, 3))
    x = (x + np.roll(x, 1, 0) + np.roll(x, 1, 1)) / 3
    return (0.1 + 0.5 * x).astype(np.float32)


def _applied(img, name, count=3, **kw):
    """The outputs of the first ``count`` seeds for which effect ``name`` (alone) was drawn."""
    outs = []
    for seed in range(200):
        out = camera_effects(img, np.random.default_rng(seed), **_only(name), **kw)
        if not np.array_equal(out, img):
            outs.append(out)
        if len(outs) == count:
            return outs
    raise AssertionError(f"{name} was applied fewer than {count} times in 200 seeds")


def _gradient_energy(img):
    """Mean squared difference to the next pixel along x, y and both diagonals."""
    return np.array([np.mean((img[:, 1:] - img[:, :-1]) ** 2),
                     np.mean((img[1:] - img[:-1]) ** 2),
                     np.mean((img[1:, 1:] - img[:-1, :-1]) ** 2),
                     np.mean((img[1:, :-1] - img[:-1, 1:]) ** 2)])


def test_shape_dtype_and_range_kept_on_non_square_images():
    img = np.random.default_rng(1).random((37, 53, 3))  # float64 in, float32 out
    for seed in range(20):
        out = camera_effects(img, np.random.default_rng(seed))
        assert out.shape == img.shape and out.dtype == np.float32
        assert out.min() >= 0 and out.max() <= 1


def test_every_switch_off_leaves_the_image_exactly():
    img = _texture()
    out = camera_effects(img, np.random.default_rng(0), **{e: False for e in EFFECTS})
    assert out is not img and np.array_equal(out, img)


def test_deterministic_for_a_seed():
    img = _texture()
    a = camera_effects(img, np.random.default_rng(5))
    b = camera_effects(img, np.random.default_rng(5))
    c = camera_effects(img, np.random.default_rng(6))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_white_balance_scales_each_channel_and_keeps_the_structure():
    img = _texture()  # at most 0.6: the largest gains do not clip it
    for out in _applied(img, "white_balance", count=5):
        gains = (out.astype(np.float64) / img).reshape(-1, 3)
        # one gain per channel, the same at every pixel: the spatial structure is untouched
        np.testing.assert_allclose(gains, np.broadcast_to(gains[0], gains.shape), rtol=1e-5)
        assert np.ptp(gains[0]) > 1e-3  # a colour cast, not just exposure


def test_vignette_darkens_corners_more_than_the_centre_and_at_most_35_percent():
    img = np.full((60, 80, 3), 0.5, np.float32)
    for out in _applied(img, "vignette", count=5):
        corners = [out[:4, :4], out[:4, -4:], out[-4:, :4], out[-4:, -4:]]
        centre = out[26:34, 36:44].mean()
        assert max(c.mean() for c in corners) < centre
        assert centre > 0.5 * 0.97 and out.min() >= 0.5 * 0.65 - 1e-6


@pytest.mark.parametrize("name", ["defocus", "motion_blur"])
def test_blur_lowers_gradient_energy(name):
    img = _texture(200, 240)
    before = _gradient_energy(img).sum()
    kept = []
    for out in _applied(img, name, count=5):
        kept.append(_gradient_energy(out).sum() / before)
        assert np.allclose(out.reshape(-1, 3).mean(0), img.reshape(-1, 3).mean(0), atol=0.01)
    assert max(kept) < 1 and min(kept) < 0.8  # some blurs are slight, none sharpens


def _anisotropy(out, img):
    """How unequally gradient energy was kept along x and y, and along the two diagonals."""
    kx, ky, kd1, kd2 = _gradient_energy(out) / _gradient_energy(img)
    return max(kx / ky, ky / kx, kd1 / kd2, kd2 / kd1), min(kx, ky, kd1, kd2)


def test_motion_blur_is_anisotropic_and_defocus_is_not():
    img = np.random.default_rng(0).random((200, 240, 3)).astype(np.float32)  # isotropic
    strong = 0
    for out in _applied(img, "motion_blur", count=8):
        anisotropy, lowest = _anisotropy(out, img)
        if lowest < 0.8:  # long enough to matter at this size
            strong += 1
            assert anisotropy > 1.3
    assert strong >= 2
    for out in _applied(img, "defocus", count=8):
        assert _anisotropy(out, img)[0] < 1.05


def test_blur_moves_no_keypoint():
    img = np.zeros((200, 240, 3), np.float32)
    img[90:93, 131:134] = 1.0  # a bright dot centred at (x, y) = (132, 91)
    ys, xs = np.mgrid[:200, :240]
    for name in ("defocus", "motion_blur"):
        for out in _applied(img, name, count=5):
            w = out[..., 0].astype(np.float64)
            centroid = np.array([(w * xs).sum(), (w * ys).sum()]) / w.sum()
            np.testing.assert_allclose(centroid, [132, 91], atol=0.05)


def test_noise_raises_high_pass_energy_more_in_bright_regions():
    img = np.full((64, 128, 3), 0.2, np.float32)
    img[:, 64:] = 0.8
    for out in _applied(img, "noise", count=8):
        noise = out - img
        assert _gradient_energy(out).sum() > 0
        # shot noise: the standard deviation grows with the signal
        assert noise[:, 64:].std() > 1.15 * noise[:, :64].std()


def test_jpeg_quality_is_like_phone_and_web_photos():
    qualities = [jpeg_quality(np.random.default_rng(s)) for s in range(200)]
    assert all(isinstance(q, int) and 60 <= q <= 95 for q in qualities)
    assert len(set(qualities)) > 20


@pytest.mark.parametrize("bad", [
    np.zeros((8, 8, 3), np.uint8),  # 0..255 photo
    np.zeros((8, 8), np.float32),  # grey
    np.zeros((8, 8, 4), np.float32),  # RGBA
    np.full((8, 8, 3), 1.5, np.float32),  # out of range
    np.full((8, 8, 3), np.nan, np.float32),
])
def test_bad_input_names_img(bad):
    with pytest.raises(ValueError, match="img must"):
        camera_effects(bad, np.random.default_rng(0))
