"""The data pipeline: coordinates, the image cache, device augmentation, the per-sample path."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from handpose_utils import data as D
from handpose_utils import safefiles
from handpose_utils.images import ImageReadError
from handpose_utils.pipelines import KeypointDataset, per_sample_transforms


def blob(width, height, centres, sigma):
    """A black float image (H, W) in [0, 1] with a Gaussian dot at each (x, y) centre."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    img = np.zeros((height, width))
    for x, y in centres:
        img = np.maximum(img, np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2)))
    return img


def centroid(channel) -> np.ndarray:
    """Intensity-weighted (x, y) centroid of a 2D array."""
    c = np.asarray(channel, np.float64)
    ys, xs = np.mgrid[0 : c.shape[0], 0 : c.shape[1]]
    return np.array([(c * xs).sum() / c.sum(), (c * ys).sum() / c.sum()])


def torch_dots(points, size, sigma=2.0) -> torch.Tensor:
    """(B, 3, S, S) uint8 batch, one white Gaussian dot per image at points[b]."""
    imgs = [blob(size, size, [p], sigma) for p in points]
    arr = (np.stack(imgs)[:, None].repeat(3, 1) * 255).round().astype(np.uint8)
    return torch.from_numpy(arr)


def make_records(folder, n=4, w=256, h=192, fmt="JPEG"):
    """n images with one dot each at the first keypoint; the other joints spread around."""
    rng = np.random.default_rng(0)
    records = []
    for i in range(n):
        x, y = rng.uniform(60, w - 60), rng.uniform(50, h - 50)
        img = (blob(w, h, [(x, y)], sigma=6) * 255).round().astype(np.uint8)
        path = folder / f"{i:03d}.{'jpg' if fmt == 'JPEG' else 'png'}"
        Image.fromarray(np.stack([img] * 3, -1)).save(path, fmt, **(
            {"quality": 95} if fmt == "JPEG" else {}))
        kp = np.concatenate([[[x, y]], rng.uniform(0, min(w, h), (20, 2))]).astype(np.float32)
        vis = [1] * 20 + [0]
        records.append({"image_path": str(path), "keypoints": kp.ravel().tolist(),
                        "visible": vis, "width": w, "height": h})
    return records


# --------------------------------------------------------------------------------------------
# Coordinates


def test_coordinate_conventions_round_trip():
    kp = torch.tensor([[[-0.5, -0.5], [0.0, 0.0], [255.5, 191.5]]])
    out = D.resize_keypoints(kp, (256, 192), 64)
    # image edges map to edges; pixel 0's centre to (0 + 0.5) * 64 / W - 0.5
    assert torch.allclose(out[0, 0], torch.tensor([-0.5, -0.5]))
    assert torch.allclose(out[0, 1], torch.tensor([0.5 * 64 / 256 - 0.5, 0.5 * 64 / 192 - 0.5]))
    assert torch.allclose(out[0, 2], torch.tensor([63.5, 63.5]))
    # normalised coordinates span [0, 1] edge to edge and do not depend on the resolution
    u = D.pixels_to_normalized(out, 64)
    assert torch.allclose(u[0, 0], torch.zeros(2)) and torch.allclose(u[0, 2], torch.ones(2))
    orig = torch.tensor([[256.0, 192.0]])
    assert torch.allclose(D.normalized_to_pixels(u, orig), kp, atol=1e-5)
    assert torch.allclose(D.to_original_pixels(u.flatten(1), orig), kp, atol=1e-5)


# --------------------------------------------------------------------------------------------
# The cache


def test_cache_puts_keypoints_on_the_pixels(tmp_path):
    """JPEG 256x192 -> 64x64 cache through PIL's draft mode: the dot drawn at keypoint 0 must be
    at the rescaled keypoint in the cached image (continuous convention, no half-pixel error)."""
    records = make_records(tmp_path)
    cache = D.build_image_cache(records, 64, progress=False)
    assert cache.images.shape == (4, 64, 64, 3) and cache.images.dtype == np.uint8
    assert cache.keypoints.shape == (4, 21, 2) and cache.keypoints.dtype == np.float32
    assert cache.visible.shape == (4, 21) and not cache.visible[:, 20].any()
    assert cache.orig_size.tolist() == [[256, 192]] * 4
    for i in range(4):
        found = centroid(cache.images[i, :, :, 0])
        assert np.abs(found - cache.keypoints[i, 0]).max() < 0.15, (found, cache.keypoints[i, 0])
    back = D.input_to_original(torch.as_tensor(cache.keypoints[:2]), cache.size,
                               torch.as_tensor(cache.orig_size[:2]))
    want = torch.tensor([r["keypoints"] for r in records[:2]]).view(2, 21, 2)
    assert torch.allclose(back, want, atol=1e-3)


def test_disk_cache_is_reused_and_rebuilt_when_records_change(tmp_path, monkeypatch):
    records = make_records(tmp_path, n=3, fmt="PNG")
    path = tmp_path / "cache" / "train_32.npy"
    first = D.build_image_cache(records, 32, path=path, progress=False)
    assert isinstance(first.images, np.memmap) and path.is_file()
    leftovers = [p for p in path.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # temporary files were renamed or removed

    def boom(*args):
        raise AssertionError("decoded again")

    monkeypatch.setattr(D, "decode_pixels", boom)
    again = D.build_image_cache(records, 32, path=path, progress=False)  # no decode
    assert np.array_equal(np.asarray(again.images), np.asarray(first.images))
    assert np.array_equal(again.keypoints, first.keypoints)
    monkeypatch.undo()
    records[1]["keypoints"][0] += 1.0  # a changed annotation invalidates the cache
    rebuilt = D.build_image_cache(records, 32, path=path, progress=False)
    assert rebuilt.keypoints[1, 0, 0] == pytest.approx(first.keypoints[1, 0, 0] + 32 / 256)


def test_bad_images_raise_or_are_skipped_and_reported(tmp_path):
    records = make_records(tmp_path, n=3)
    bad = records[1]["image_path"]
    with open(bad, "r+b") as f:  # truncate the JPEG
        f.truncate(os.path.getsize(bad) // 3)
    with pytest.raises(ImageReadError, match="001.jpg"):
        D.build_image_cache(records, 32, progress=False)
    logged = []
    cache = D.build_image_cache(records, 32, skip_bad=True, progress=False, log=logged.append)
    assert len(cache) == 2 and cache.record_index.tolist() == [0, 2]
    assert cache.report.n_skipped == 1 and cache.report.skipped[0][0] == bad
    assert logged and "skipped 1" in logged[0]
    ds = KeypointDataset(records, 32, skip_bad=True, log=None)
    assert len(ds) == 2 and ds.report.n_skipped == 1
    with pytest.raises(ImageReadError, match="001.jpg"):
        KeypointDataset(records, 32)[1]
    path = tmp_path / "cache" / "skip_32.npy"  # on disk too, built and then reused
    for _ in range(2):
        disk = D.build_image_cache(records, 32, path=path, skip_bad=True, progress=False, log=None)
        assert len(disk) == 2 and disk.record_index.tolist() == [0, 2]
        assert np.array_equal(disk.images, cache.images) and disk.report.n_skipped == 1


def fake_cache(n=10, size=16, seed=0) -> D.ImageCache:
    rng = np.random.default_rng(seed)
    return D.ImageCache(
        images=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
        keypoints=rng.uniform(0, size - 1, (n, 21, 2)).astype(np.float32),
        visible=rng.random((n, 21)) > 0.2,
        orig_size=np.full((n, 2), 4.0 * size, np.float32),
        record_index=np.arange(n) * 10,
        size=size,
    )


def test_cached_dataset_batches_equal_stacked_samples():
    cache = fake_cache()
    xyz = np.arange(100 * 21 * 3, dtype=np.float32).reshape(100, 21, 3)  # one per record
    ds = D.CachedKeypointDataset(cache, indices=[1, 3, 5, 7, 9], extras={"xyz": xyz})
    batch = ds[[4, 0, 2]]
    samples = [ds[i] for i in (4, 0, 2)]
    for key in ("image", "keypoints", "visible", "index", "orig_size", "xyz"):
        assert torch.equal(batch[key], torch.stack([s[key] for s in samples])), key
    assert torch.equal(batch["xyz"], torch.from_numpy(xyz[[90, 10, 50]]))  # by record index
    assert batch["image"].shape == (3, 3, 16, 16) and batch["image"].dtype == torch.uint8
    assert batch["image"].is_contiguous(memory_format=torch.channels_last)
    assert batch["index"].tolist() == [90, 10, 50]
    assert torch.equal(batch["image"][0], torch.from_numpy(cache.images[9]).permute(2, 0, 1))

    loader = D.cached_loader(cache, batch_size=4, shuffle=True, drop_last=True)
    assert len(loader) == 2
    torch.manual_seed(5)
    order1 = torch.cat([b["index"] for b in loader])
    torch.manual_seed(5)
    order2 = torch.cat([b["index"] for b in loader])
    assert torch.equal(order1, order2) and len(set(order1.tolist())) == 8  # seeded, no repeats
    full = D.cached_loader(cache, batch_size=4)
    assert torch.cat([b["index"] for b in full]).tolist() == list(range(0, 100, 10))


# --------------------------------------------------------------------------------------------
# Device augmentation


def test_device_augment_moves_keypoints_with_the_pixels():
    torch.manual_seed(0)
    size = 64
    points = (32 + (torch.rand(8, 1, 2) - 0.5) * 20).double()
    images = torch_dots(points[:, 0].tolist(), size)
    aug = D.DeviceAugment(rotation=40, scale=(0.8, 1.2), translate=0.1, brightness=0,
                          contrast=0, saturation=0, normalize=False)
    g = torch.Generator().manual_seed(1)
    out, kp, params = aug(images, points.float(), generator=g, return_params=True)
    assert out.dtype == torch.float32 and kp.shape == (8, 1, 2)
    assert 0 < params["flip"].sum() < 8  # both flipped and unflipped samples were checked
    moved = (kp[:, 0] - points[:, 0].float()).norm(dim=-1)
    assert moved.min() > 1.0  # the augmentation really moved every dot
    for b in range(8):
        found = centroid(out[b, 0].numpy())
        assert np.abs(found - kp[b, 0].numpy()).max() < 0.5, (b, found, kp[b, 0])
    # the same generator seed gives the same augmentation
    out2, kp2 = aug(images, points.float(), generator=torch.Generator().manual_seed(1))
    assert torch.equal(out, out2) and torch.equal(kp, kp2)
    out3, _ = aug(images, points.float(), generator=torch.Generator().manual_seed(2))
    assert not torch.equal(out, out3)


def test_flip_twice_is_identity_and_eval_only_normalises():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (2, 3, 12, 10), dtype=torch.uint8)
    kp = torch.rand(2, 21, 2) * 9
    flip = D.DeviceAugment(flip_p=1.0, rotation=0, scale=(1, 1), translate=0, brightness=0,
                           contrast=0, saturation=0, normalize=False)
    once, kp1 = flip(images, kp)
    assert torch.allclose(kp1[..., 0], 9 - kp[..., 0], atol=1e-5)  # x -> W - 1 - x
    assert torch.allclose(once, images.flip(-1).float() / 255, atol=1e-6)
    twice, kp2 = flip(once, kp1)
    assert torch.allclose(twice, images.float() / 255, atol=1e-6)
    assert torch.allclose(kp2, kp, atol=1e-5)

    aug = D.DeviceAugment().eval()
    out, kp_eval = aug(images, kp)
    mean = torch.tensor(D.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(D.IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(out, (images.float() / 255 - mean) / std, atol=1e-6)
    assert torch.equal(kp_eval, kp)
    assert torch.allclose(D.denormalize(out), images.float() / 255, atol=1e-6)


def test_flip_index_swaps_left_right_joints_and_their_visibility():
    """COCO-style skeletons: a flipped left wrist becomes the right wrist."""
    kp = torch.tensor([[[2.0, 5.0], [7.0, 5.0], [4.0, 1.0]]]).repeat(8, 1, 1)  # left, right, nose
    vis = torch.tensor([[True, False, True]]).repeat(8, 1)
    images = torch.zeros(8, 3, 10, 10, dtype=torch.uint8)
    aug = D.DeviceAugment(flip_p=0.5, rotation=0, scale=(1, 1), translate=0, brightness=0,
                          contrast=0, saturation=0, flip_index=[1, 0, 2])
    torch.manual_seed(0)
    _, _, extras = D.PrepareBatch(aug)({"image": images, "keypoints": kp, "visible": vis}, "cpu",
                                       train=True)
    flip = extras["flip"]
    assert 0 < flip.sum() < 8
    # x -> 9 - x, then left and right trade places: "left" stays the joint on the left
    flipped = torch.tensor([[2.0, 5.0], [7.0, 5.0], [5.0, 1.0]])
    for b in range(8):
        assert torch.allclose(extras["keypoints"][b], flipped if flip[b] else kp[b], atol=1e-5)
        want = [False, True, True] if flip[b] else [True, False, True]
        assert extras["visible"][b].tolist() == want


def test_colour_jitter_changes_colour_not_geometry():
    images = torch.full((4, 3, 8, 8), 100, dtype=torch.uint8)
    images[:, 0] = 200
    aug = D.DeviceAugment(flip_p=0, rotation=0, scale=(1, 1), translate=0, brightness=0.5,
                          contrast=0, saturation=0, normalize=False)
    out, _ = aug(images, generator=torch.Generator().manual_seed(0))
    factors = out[:, 1, 0, 0] / (100 / 255)
    assert ((factors > 0.5 - 1e-6) & (factors < 1.5 + 1e-6)).all() and factors.std() > 0.01
    # brightness scales every pixel of an image by one factor: flat channels stay flat
    assert torch.allclose(out[:, 1], out[:, 1, :1, :1].expand(-1, 8, 8))


# --------------------------------------------------------------------------------------------
# The per-sample path


def test_torchvision_v2_moves_keypoints():
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    image = tv_tensors.Image(torch.zeros(3, 100, 200, dtype=torch.uint8))
    kp = tv_tensors.KeyPoints([[10.0, 20.0], [199.0, 99.0]], canvas_size=(100, 200))
    _, half = v2.Resize((50, 100))(image, kp)
    assert half.tolist() == [[5.0, 10.0], [99.5, 49.5]]  # v2 halves coordinates
    assert half.canvas_size == (50, 100)
    _, flipped = v2.RandomHorizontalFlip(p=1.0)(image, kp)
    assert flipped[:, 0].tolist() == [189.0, 0.0]  # W - 1 - x: the pixel-centre convention

    size = 48
    pts = [(20.3, 25.7)]
    img = tv_tensors.Image(torch_dots(pts, size)[0])
    kpt = tv_tensors.KeyPoints(torch.tensor(pts), canvas_size=(size, size))
    torch.manual_seed(3)
    affine = v2.RandomAffine(degrees=30, translate=(0.1, 0.1), scale=(0.9, 1.1),
                             interpolation=v2.InterpolationMode.BILINEAR)
    out_img, out_kp = affine(img, kpt)
    found = centroid(out_img[0].float().numpy())
    # about half a pixel of convention mismatch in torchvision's keypoint affine (see docs)
    assert np.abs(found - out_kp[0].numpy()).max() < 1.0


def test_keypoint_dataset_matches_cached_batches(tmp_path):
    records = make_records(tmp_path, n=4, fmt="PNG")
    cache = D.build_image_cache(records, 32, progress=False)
    ds = KeypointDataset(records, 32)
    cached = D.CachedKeypointDataset(cache)
    sample, ref = ds[2], cached[2]
    assert sample.keys() == ref.keys()
    assert sample["image"].dtype == torch.uint8 and sample["image"].shape == (3, 32, 32)
    assert torch.allclose(sample["keypoints"], ref["keypoints"], atol=1e-4)
    # torch's antialiased resize and PIL's agree to a few grey levels
    diff = (sample["image"].float() - ref["image"].float()).abs().mean()
    assert diff < 3
    found = centroid(sample["image"][0].numpy())
    assert np.abs(found - sample["keypoints"][0].numpy()).max() < 0.3

    train = KeypointDataset(records, 32, transform=per_sample_transforms(train=True))
    torch.manual_seed(0)
    s = train[0]
    assert s["image"].dtype == torch.float32 and s["keypoints"].shape == (21, 2)
    loader_t, loader_v = D.make_loaders(train, cache, batch_size=2, num_workers=0, device="cpu")
    batch = next(iter(loader_t))
    vbatch = next(iter(loader_v))
    assert batch.keys() == vbatch.keys()
    assert batch["image"].shape == vbatch["image"].shape == (2, 3, 32, 32)
    assert not loader_t.pin_memory and loader_t.num_workers == 0


def test_prepare_batch_targets_and_extras():
    cache = fake_cache(n=4, size=16)
    batch = D.CachedKeypointDataset(cache)[[0, 1, 2, 3]]
    prep = D.PrepareBatch(D.DeviceAugment(flip_p=1.0, rotation=0, scale=(1, 1), translate=0))
    images, targets, extras = prep(batch, "cpu", train=False)
    assert images.dtype == torch.float32 and targets.shape == (4, 42)
    want = (batch["keypoints"] + 0.5) / 16
    assert torch.allclose(targets, want.flatten(1))
    assert torch.equal(extras["visible"], batch["visible"]) and "image" not in extras
    _, t_train, ex_train = prep(batch, "cpu", train=True)
    assert torch.allclose(t_train.view(4, 21, 2)[..., 0], 1 - want[..., 0], atol=1e-6)  # flipped
    assert ex_train["flip"].all() and ex_train["matrix"].shape == (4, 3, 3)
    # float images are taken as already normalised
    fbatch = dict(batch, image=torch.zeros(4, 3, 16, 16))
    images, _, _ = prep(fbatch, "cpu", train=True)
    assert torch.equal(images, fbatch["image"])


# --------------------------------------------------------------------------------------------
# Failures: interrupted builds, failed writes, images whose size disagrees with their record


def dead_pid() -> int:
    """The pid of a process that has finished."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporaries_of_an_interrupted_build_are_removed(tmp_path):
    records = make_records(tmp_path, n=2, fmt="PNG")
    folder = tmp_path / "cache"
    folder.mkdir()
    path = folder / "train_32.npy"
    host = safefiles._host()
    gone = dead_pid()
    with pytest.MonkeyPatch.context() as mp:  # named as the build of a process that has exited
        mp.setattr(os, "getpid", lambda: gone)
        left = safefiles.temporary_path(path)
    stale = [left, folder / ".train_32.npy.a8d7f6g7.tmp"]  # the second: unmodified for hours
    kept = [folder / f".train_32.npy.{os.getppid()}-{host}.q1w2e3r4.tmp",  # its writer still runs
            folder / ".train_32.npy.z9x8c7v6.tmp",                         # recent, writer unknown
            folder / f".other_32.npy.{dead_pid()}-{host}.r5t6y7u8.tmp"]    # another cache's
    for p in stale + kept:
        p.write_bytes(b"\0" * 1000)
    old = os.path.getmtime(stale[1]) - 2 * 3600
    for p in (stale[1], kept[0]):  # a running writer's file is kept however old
        os.utime(p, (old, old))
    logged = []
    D.build_image_cache(records, 32, path=path, progress=False, log=logged.append)
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept)
    assert any("removed 2 stale temporary file(s)" in line for line in logged), logged


def test_a_failed_write_raises_and_leaves_no_file(tmp_path, monkeypatch):
    import errno

    records = make_records(tmp_path, n=2, fmt="PNG")
    path = tmp_path / "cache" / "train_32.npy"

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np.lib.format, "open_memmap", disk_full)
    with pytest.raises(OSError, match=r"could not write .*train_32.npy: No space left on device"):
        D.build_image_cache(records, 32, path=path, progress=False)
    assert list(path.parent.iterdir()) == []
    monkeypatch.undo()
    monkeypatch.setattr(np, "savez", disk_full)  # the keypoints file, written last
    with pytest.raises(OSError, match=r"could not write .*train_32.npy.*: No space left on device"):
        D.build_image_cache(records, 32, path=path, progress=False)
    assert list(path.parent.iterdir()) == []


def test_image_size_must_match_its_record(tmp_path):
    records = make_records(tmp_path, n=2, fmt="PNG")  # 256x192 files
    records[1]["width"] = 224
    ds = KeypointDataset(records, 32)
    ds[0]
    with pytest.raises(ValueError, match=r"001.png.* 256x192 .* 224x192"):
        ds[1]
    with pytest.raises(ValueError, match=r"001.png.* 256x192 .* 224x192"):
        D.build_image_cache(records, 32, progress=False)
    records[1]["width"] = "256"  # a string, not a size: say so instead of "256x192 vs 256x192"
    for build in (lambda: KeypointDataset(records, 32)[1],
                  lambda: D.build_image_cache(records, 32, progress=False)):
        with pytest.raises(ValueError, match=r"001.png.*'width' is '256' \(str\).*integer"):
            build()


def test_implausible_keypoints_are_refused_against_the_decoded_size(tmp_path):
    """Records without width and height (handed straight in, or from an old notebook) are checked
    against the image's real size: normalised keypoints, or ones 5,000 px outside a 256 x 192
    image, would train on nothing but the top-left corner or on clamped edges."""
    records = make_records(tmp_path, n=2, fmt="PNG")  # 256x192 files
    for rec in records:
        del rec["width"], rec["height"]
    fine = [dict(r) for r in records]
    shifted = enumerate(records[0]["keypoints"])
    fine[0]["keypoints"] = [v - 100 if i % 2 == 0 else v for i, v in shifted]
    assert min(fine[0]["keypoints"][0::2]) < -20  # a hand partly outside the image passes
    D.build_image_cache(fine, 32, progress=False)
    KeypointDataset(fine, 32)[0]
    cases = [([v / 256 if i % 2 == 0 else v / 192 for i, v in enumerate(records[1]["keypoints"])],
              r"001.png: every visible keypoint .* in a 256x192 image: normalised coordinates\?"),
             (records[1]["keypoints"][:2] + [5000.0, 100.0] + records[1]["keypoints"][4:],
              r"001.png: visible keypoints reach x .* to 5000.*256x192 image: another resolution")]
    for keypoints, message in cases:
        bad = [records[0], dict(records[1], keypoints=keypoints)]
        with pytest.raises(ValueError, match=message):
            KeypointDataset(bad, 32)[1]
        with pytest.raises(ValueError, match=message):
            D.build_image_cache(bad, 32, progress=False)


def test_shard_caches_split_the_records_evenly_and_shuffle_within(tmp_path, monkeypatch):
    """Under torchrun each process caches only its share: all shares as long (a shorter one
    padded with the first records), together every record, each in a file of its own. Its loader
    shuffles within it (not split again by the process count), a new order each epoch."""
    import math

    from handpose_utils import env

    records = make_records(tmp_path, n=5, w=160, h=120)
    whole = D.build_image_cache(records, 16, progress=False)
    folder = tmp_path / "cache"
    for world_size in (2, 3):
        shards = [D.build_image_cache(records, 16, path=folder / "train_16.npy", progress=False,
                                      shard=(rank, world_size)) for rank in range(world_size)]
        assert [len(c) for c in shards] == [math.ceil(len(records) / world_size)] * world_size
        assert set().union(*(c.record_index.tolist() for c in shards)) == set(range(5))
        for rank, cache in enumerate(shards):
            assert cache.shard == (rank, world_size)
            assert np.array_equal(cache.images, whole.images[cache.record_index])
            assert np.array_equal(cache.keypoints, whole.keypoints[cache.record_index])
    assert sorted(p.name for p in folder.glob("*.npy")) == sorted(
        f"train_16.shard{r}of{w}.npy" for w in (2, 3) for r in range(w))

    monkeypatch.setattr(env, "distributed", lambda: env.Distributed(rank=1, world_size=2))
    cache = D.build_image_cache(records, 16, progress=False, shard=(1, 2))
    loader = D.cached_loader(cache, batch_size=2, shuffle=True, seed=0)

    def order(epoch):
        loader.sampler.sampler.set_epoch(epoch)
        return [int(i) for batch in loader for i in batch["index"]]

    assert sorted(order(1)) == sorted(cache.record_index.tolist())  # the whole shard
    assert order(1) == order(1)  # seeded by the epoch: a resumed run repeats it
    assert any(order(epoch) != order(1) for epoch in range(2, 8))


def test_a_shard_that_skipped_images_is_refused(tmp_path):
    """A process with fewer images than the others would run fewer batches, and DDP would wait
    for it forever: the shard names the images to remove instead."""
    records = make_records(tmp_path, n=4, w=160, h=120)
    bad = records[1]["image_path"]
    with open(bad, "r+b") as f:  # truncate the JPEG
        f.truncate(os.path.getsize(bad) // 3)
    D.build_image_cache(records, 16, skip_bad=True, progress=False, log=None, shard=(0, 2))
    with pytest.raises(ImageReadError, match=r"process 1 of 2 skipped images(.|\n)*001.jpg"):
        D.build_image_cache(records, 16, skip_bad=True, progress=False, log=None, shard=(1, 2))
