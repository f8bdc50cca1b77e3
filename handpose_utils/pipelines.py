"""Generated from notebooks/03_cnn_regression.ipynb by `python -m handpose_utils.export`.

Edit the notebook's `#@save pipelines` cells, not this file: the tests check that the two agree."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from handpose_utils.data import IMAGENET_MEAN, IMAGENET_STD, check_record_size, resize_keypoints
from handpose_utils.images import SkipReport, check_images, read_image
from handpose_utils.records import keypoints_array, visible_array


# --- from notebooks/03_cnn_regression.ipynb ---
def per_sample_transforms(train: bool = True, flip_p: float = 0.5, rotation: float = 30.0,
                          scale=(0.8, 1.2), translate: float = 0.1, jitter: float = 0.3,
                          normalize: bool = True):
    """torchvision ``transforms.v2`` pipeline for :class:`KeypointDataset`, with
    ``DeviceAugment``'s parameters: flip, affine, colour jitter (train only), then float
    conversion and ImageNet normalisation. v2 moves ``tv_tensors.KeyPoints`` with the image.

    Caveat (torchvision 0.23-0.29): ``affine`` rotates keypoints about ``(W/2, H/2)`` but pixels
    about ``((W-1)/2, (H-1)/2)``: up to half a pixel of disagreement. The device path has none.
    """
    from torchvision.transforms import v2

    steps = []
    if train:
        fill = tuple(int(round(255 * m)) for m in IMAGENET_MEAN)  # like DeviceAugment's border
        steps += [
            v2.RandomHorizontalFlip(flip_p),
            v2.RandomAffine(degrees=rotation, translate=(translate, translate), scale=scale,
                            interpolation=v2.InterpolationMode.BILINEAR, fill=fill),
            v2.ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter),
        ]
    if normalize:
        steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    return v2.Compose(steps)


class KeypointDataset(Dataset):
    """Reads, resizes and transforms one record per ``__getitem__``, the classic way.

    Each sample: ``read_image``, resize to ``size x size`` (keypoints by ``resize_keypoints``;
    torchvision's ``Resize`` scales them by ``S / W``, half a pixel off in our convention), then
    ``transform(tv_tensors.Image, tv_tensors.KeyPoints)``. With ``transform=None`` the image
    stays uint8 and ``PrepareBatch`` normalises (or augments) it on the device. Samples have the
    keys of ``CachedKeypointDataset``'s, and ``extras`` works as there. ``skip_bad=True`` decodes
    every image once up front and leaves out unreadable ones (``self.report``); by default a bad
    image raises when it is reached.
    """

    def __init__(self, records: list[dict], size: int = 224, transform=None,
                 skip_bad: bool = False, extras: dict | None = None, log=print):
        self.records, self.size, self.transform = records, size, transform
        self.extras = {k: np.asarray(v) for k, v in (extras or {}).items()}
        paths = [r["image_path"] for r in records]
        if skip_bad:
            good, self.report = check_images(paths, skip_bad=True)
            if self.report.n_skipped and log:
                log(f"KeypointDataset: {self.report}")
        else:
            good, self.report = list(range(len(records))), SkipReport(seen=len(records))
        self.indices = np.asarray(good, np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        from torchvision import tv_tensors
        from torchvision.transforms.v2 import functional as TF

        idx = int(self.indices[i])
        rec = self.records[idx]
        array = read_image(rec["image_path"])
        h, w = array.shape[:2]
        check_record_size(rec, w, h)
        image = TF.resize(torch.from_numpy(array).permute(2, 0, 1), [self.size, self.size],
                          antialias=True)
        kp = resize_keypoints(keypoints_array(rec), (w, h), self.size)
        image = tv_tensors.Image(image)
        kp = tv_tensors.KeyPoints(kp, canvas_size=(self.size, self.size))
        if self.transform is not None:
            image, kp = self.transform(image, kp)
        sample = {
            "image": image.as_subclass(torch.Tensor),
            "keypoints": kp.as_subclass(torch.Tensor).float(),
            "visible": torch.from_numpy(visible_array(rec)),
            "index": torch.tensor(idx),
            "orig_size": torch.tensor([w, h], dtype=torch.float32),
        }
        for key, values in self.extras.items():
            sample[key] = torch.as_tensor(values[idx])
        return sample
