"""Generated from notebooks/05_resnet50_3d_regression.ipynb by `python -m handpose_utils.export`.

Edit the notebook's `#@save regression3d` cells, not this file: the tests check that the two agree."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from handpose_utils import env
from handpose_utils.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CachedKeypointDataset,
    DeviceAugment,
    PrepareBatch,
    build_image_cache,
    make_loaders,
)
from handpose_utils.engine import CheckpointError, TrainConfig, evaluate, fit, load_checkpoint
from handpose_utils.metrics import per_sample_epe
from handpose_utils.metrics3d import (
    fraction_within,
    mpjpe,
    pck3d_curve,
    procrustes_align,
    reprojection_error,
)
from handpose_utils.pretrained import imagenet_state_dict
from handpose_utils.skeletons import MIDDLE_MCP, NUM_HAND_JOINTS
from handpose_utils.splits import count_pose_leak, grouped_split, random_split


# --- from notebooks/05_resnet50_3d_regression.ipynb ---
def root_relative(xyz, root: int = MIDDLE_MCP):
    """``(..., J, 3)`` joints minus their root joint; arrays stay arrays, tensors tensors."""
    return xyz - xyz[..., root : root + 1, :]


@dataclass
class RootRelativeCodec:
    """Camera-frame joints (metres) <-> targets; decoding with the true ``scale`` flatters MPJPE."""

    root: int = MIDDLE_MCP
    normalize: bool = False
    default_scale: float | None = None

    def _scale(self, scale, like: torch.Tensor) -> torch.Tensor:
        if scale is None:
            if self.default_scale is None:
                raise ValueError("this codec normalises by the hand's scale: pass scale=..., or "
                                 "set default_scale (e.g. the mean training scale)")
            scale = self.default_scale
        s = torch.as_tensor(scale, dtype=like.dtype, device=like.device)
        return s.reshape(-1, 1, 1) if s.dim() else s

    def encode(self, xyz, scale=None) -> torch.Tensor:
        rel = root_relative(torch.as_tensor(xyz).float(), self.root)
        return rel / self._scale(scale, rel) if self.normalize else rel

    def decode(self, outputs, scale=None) -> torch.Tensor:
        out = torch.as_tensor(outputs).float()
        out = out.reshape(*out.shape[:-1], -1, 3) if out.shape[-1] != 3 else out  # (B, 63)
        return out * self._scale(scale, out) if self.normalize else out


# --- from notebooks/05_resnet50_3d_regression.ipynb ---
def pose3d_metrics(pred_mm, gt_mm, xyz=None, K=None, root: int = MIDDLE_MCP,
                   allow_reflection: bool = False, align=None) -> dict:
    """The notebook's 3D numbers for root-relative mm ``(N, 21, 3)`` (``reproj_px`` needs ``xyz``
    and ``K``); aligned with ``align(pred, gt)`` (float64 arrays), else the package's rotation."""
    if align is None:
        aligned = procrustes_align(pred_mm, gt_mm, allow_reflection)
    else:
        aligned = torch.as_tensor(np.asarray(align(np.asarray(pred_mm, np.float64),
                                                   np.asarray(gt_mm, np.float64)), np.float64))
    out = {"mpjpe": mpjpe(pred_mm, gt_mm), "pa_mpjpe": mpjpe(aligned, gt_mm),
           "pck3d_auc": pck3d_curve(pred_mm, gt_mm)[1],
           "pa_pck3d_auc": pck3d_curve(aligned, gt_mm)[1],
           "pck3d@20mm": fraction_within(pred_mm, gt_mm, 20.0),
           "within_50mm": fraction_within(pred_mm, gt_mm, 50.0)}
    if xyz is not None and K is not None:
        out["reproj_px"] = reprojection_error(torch.as_tensor(pred_mm) / 1000.0, xyz, K, root)
    return out


class Pose3DMeter:
    """The engine's meter: :func:`pose3d_metrics` of the whole set, against ``extras["xyz"]``."""

    def __init__(self, codec: RootRelativeCodec, root: int = MIDDLE_MCP, align=None):
        self.codec, self.root, self.align = codec, root, align
        self.log_items = [("mpjpe", "MPJPE", "{:.1f}mm"), ("pa_mpjpe", "PA-MPJPE", "{:.1f}mm"),
                          ("pck3d_auc", "AUC", "{:.3f}")]
        self.reset()

    def reset(self) -> None:
        self._parts: dict[str, list] = {k: [] for k in ("pred", "gt", "xyz", "K", "index")}

    @torch.no_grad()
    def update(self, outputs, targets, extras: dict) -> None:
        scale = extras.get("scale")
        pred = self.codec.decode(outputs.detach().float().cpu(),
                                 None if scale is None else scale.cpu())
        xyz = extras["xyz"].detach().float().cpu()
        self._parts["pred"].append(pred * 1000.0)
        self._parts["gt"].append(root_relative(xyz, self.root) * 1000.0)
        self._parts["xyz"].append(xyz)
        self._parts["K"].append(extras["K"].detach().float().cpu())
        if "index" in extras:
            self._parts["index"].append(extras["index"].detach().cpu().long())

    def arrays(self) -> dict:
        """``pred``, ``gt`` (root-relative mm), ``xyz`` (metres), ``K`` and ``index``."""
        if not self._parts["pred"]:
            raise RuntimeError("Pose3DMeter is empty: evaluate a loader first")
        return {k: torch.cat(v) for k, v in self._parts.items() if v}

    def compute(self) -> dict:
        a = self.arrays()
        return pose3d_metrics(a["pred"], a["gt"], a["xyz"], a["K"], self.root, align=self.align)


def mean_pose(records: Sequence[dict], root: int = MIDDLE_MCP) -> np.ndarray:
    """The mean root-relative pose ``(21, 3)`` (metres) of ``records``: the baseline."""
    return root_relative(pose3d_extras(records)["xyz"], root).mean(0)


# --- from notebooks/05_resnet50_3d_regression.ipynb ---
def rotation_about_z(theta) -> torch.Tensor:
    """``(..., 3, 3)`` rotations by ``theta`` (radians) about the optical axis z."""
    theta = torch.as_tensor(theta, dtype=torch.float64)
    c, s = torch.cos(theta), torch.sin(theta)
    r = torch.zeros(*theta.shape, 3, 3, dtype=torch.float64)
    r[..., 0, 0], r[..., 0, 1], r[..., 1, 0], r[..., 1, 1] = c, -s, s, c
    r[..., 2, 2] = 1.0
    return r


def rotate_sample(xyz, K, theta, size):
    """``(R_z xyz, M K R_z^T)`` (float64): the sample in its image rotated about the centre."""
    rz = rotation_about_z(theta).numpy()
    c0 = np.array([(size[0] - 1) / 2, (size[1] - 1) / 2])
    warp = np.eye(3)
    warp[:2, :2], warp[:2, 2] = rz[:2, :2], c0 - rz[:2, :2] @ c0  # u' = Q (u - c0) + c0
    return np.asarray(xyz, float) @ rz.T, warp @ np.asarray(K, float) @ rz.T


def in_plane(matrix: torch.Tensor) -> torch.Tensor:
    """The 3D rotation (a reflection for flips) about z that image warps ``matrix`` apply."""
    lin = matrix[:, :2, :2].float()
    det = lin[:, 0, 0] * lin[:, 1, 1] - lin[:, 0, 1] * lin[:, 1, 0]
    q = lin / det.abs().sqrt().clamp(min=1e-12)[:, None, None]
    r3 = torch.eye(3, dtype=q.dtype, device=q.device).repeat(len(q), 1, 1)
    r3[:, :2, :2] = q
    return r3


def rotate_xyz_like_image(xyz: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Camera-frame joints ``(B, J, 3)`` as seen in the image warped by ``matrix``."""
    return xyz.float() @ in_plane(matrix).to(xyz.device).transpose(1, 2)


def input_camera(K: torch.Tensor, orig_size: torch.Tensor, input_size: int,
                 matrix: torch.Tensor | None = None) -> torch.Tensor:
    """Cameras ``(B, 3, 3)`` of the network input: ``M D K R_z^T``, ``D`` the resize to ``S``."""
    K = K.float()
    size = orig_size.float().to(K.device)
    d = torch.zeros_like(K)
    sx, sy = input_size / size[:, 0], input_size / size[:, 1]
    d[:, 0, 0], d[:, 1, 1], d[:, 2, 2] = sx, sy, 1.0
    d[:, 0, 2], d[:, 1, 2] = 0.5 * sx - 0.5, 0.5 * sy - 0.5
    if matrix is None:
        return d @ K
    m = matrix.float().to(K.device)
    return m @ d @ K @ in_plane(m).transpose(1, 2)


class Pose3DTargets:
    """``target_fn`` for ``PrepareBatch``; leaves ``extras["xyz_input"]``, ``extras["K_input"]``."""

    def __init__(self, codec):
        self.codec = codec

    def __call__(self, keypoints, extras: dict, size) -> torch.Tensor:
        xyz = extras["xyz"].float()
        matrix = extras.get("matrix")
        if matrix is not None:
            xyz = rotate_xyz_like_image(xyz, matrix)
        extras["xyz_input"] = xyz
        if "K" in extras and "orig_size" in extras:
            extras["K_input"] = input_camera(extras["K"], extras["orig_size"], size[0], matrix)
        return self.codec.encode(xyz, extras.get("scale"))


# --- from notebooks/05_resnet50_3d_regression.ipynb ---
def pose3d_extras(records: Sequence[dict]) -> dict[str, np.ndarray]:
    """Per-record ``extras``: ``xyz`` ``(N, 21, 3)`` metres, ``K`` ``(N, 3, 3)``, ``scale``."""
    missing = [k for k in ("xyz", "K") if k not in records[0]]
    if missing:
        raise KeyError(f"records need {missing} for 3D targets: read them with "
                       "handpose_utils.load_freihand (or prepare_splits)")
    xyz = np.asarray([r["xyz"] for r in records], np.float32)
    scale = np.asarray([r.get("scale", np.nan) for r in records], np.float32)
    scale = np.where(np.isfinite(scale), scale, np.linalg.norm(xyz[:, 9] - xyz[:, 10], axis=-1))
    return {"xyz": xyz, "K": np.asarray([r["K"] for r in records], np.float32),
            "scale": scale.astype(np.float32)}


def pose3d_dataset(records: Sequence[dict], image_size: int, cache_path=None,
                   progress: bool = True, log=print) -> CachedKeypointDataset:
    """The records' images cached at ``image_size``, with :func:`pose3d_extras`."""
    cache = build_image_cache(list(records), image_size, path=cache_path, progress=progress,
                              log=log)
    return CachedKeypointDataset(cache, extras=pose3d_extras(records))


def pose3d_augment(geometric: bool = True, flip_p: float = 0.0, rotation: float = 30.0,
                   scale=(0.85, 1.15), translate: float = 0.05, jitter: float = 0.3
                   ) -> DeviceAugment:
    """The shared ``DeviceAugment``; ``geometric=False``: colour jitter only."""
    if not geometric:
        return DeviceAugment(flip_p=0.0, rotation=0.0, scale=(1.0, 1.0), translate=0.0,
                             brightness=jitter, contrast=jitter, saturation=jitter)
    return DeviceAugment(flip_p=flip_p, rotation=rotation, scale=scale, translate=translate,
                         brightness=jitter, contrast=jitter, saturation=jitter)


def pose3d_prepare_batch(codec: RootRelativeCodec, augment: DeviceAugment | None = None
                         ) -> PrepareBatch:
    """The engine's ``prepare_batch``: the shared pipeline with :class:`Pose3DTargets`."""
    return PrepareBatch(augment if augment is not None else pose3d_augment(),
                        target_fn=Pose3DTargets(codec))


# --- from notebooks/05_resnet50_3d_regression.ipynb ---
ARCHS = {"resnet50": "ResNet50_Weights", "resnet34": "ResNet34_Weights",
         "resnet18": "ResNet18_Weights"}


class ResNetPose3D(nn.Module):
    """torchvision ResNet (``arch``) without its classifier, and a head to ``(B, 21, 3)``."""

    def __init__(self, num_joints: int = NUM_HAND_JOINTS, hidden: int = 1024,
                 dropout: float = 0.5, arch: str = "resnet50"):
        super().__init__()
        import torchvision

        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {sorted(ARCHS)}, got {arch!r}")
        self.backbone = getattr(torchvision.models, arch)(weights=None)
        features = self.backbone.fc.in_features  # 2048 for ResNet-50, 512 for 18/34
        self.backbone.fc = nn.Identity()
        self.head = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(inplace=True),
                                  nn.Dropout(dropout), nn.Linear(hidden, num_joints * 3))
        nn.init.normal_(self.head[3].weight, std=1e-3)  # first predictions near the root
        nn.init.zeros_(self.head[3].bias)
        self.num_joints, self.hidden, self.dropout, self.arch = num_joints, hidden, dropout, arch
        self.pretrained = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x)).view(x.shape[0], self.num_joints, 3)


def load_imagenet_backbone(model: ResNetPose3D, weights: str = "IMAGENET1K_V1",
                           timeout: float = 30.0, log=print) -> bool:
    """ImageNet ``weights`` into ``model.backbone``; False (saying why) when not to be had."""
    import torchvision

    enum = getattr(torchvision.models, ARCHS[model.arch])
    w = enum[weights]
    state = imagenet_state_dict(w, f"the {model.arch} backbone", timeout, log)
    if state is None:
        return False
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = model.backbone.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"ImageNet weights do not fit the {model.arch} backbone: missing "
                           f"{list(missing)[:4]}, unexpected {list(unexpected)[:4]}")
    if log:
        log(f"loaded ImageNet weights ({enum.__name__}.{weights}) into the backbone")
    return True


def build_pose3d_model(pretrained: bool = True, dropout: float = 0.5, hidden: int = 1024,
                       arch: str = "resnet50", weights: str = "IMAGENET1K_V1",
                       timeout: float = 30.0, log=print) -> ResNetPose3D:
    """:class:`ResNetPose3D`, with ImageNet weights in the backbone when ``pretrained``."""
    model = ResNetPose3D(hidden=hidden, dropout=dropout, arch=arch)
    if pretrained:
        model.pretrained = load_imagenet_backbone(model, weights, timeout=timeout, log=log)
    return model


def pose3d_loss(kind: str = "mse") -> nn.Module:
    """``"mse"`` (mean squared error) or ``"l1"`` (mean absolute error)."""
    losses = {"mse": nn.MSELoss, "l1": nn.L1Loss}
    if kind not in losses:
        raise ValueError(f"loss must be one of {sorted(losses)}, got {kind!r}")
    return losses[kind]()


# --- from notebooks/05_resnet50_3d_regression.ipynb ---
def run_config(codec, image_size: int, model: ResNetPose3D, **extra) -> dict:
    """``TrainConfig(settings=...)`` for :func:`load_pose3d_model` (numbers and strings only)."""
    codec_settings = {f"codec_{k}": getattr(codec, k) for k in ("root", "normalize",
                                                                "default_scale")}
    return {"task": "pose3d", "image_size": int(image_size), "arch": model.arch,
            "hidden": model.hidden, "dropout": model.dropout, **codec_settings, **extra}


# --- from notebooks/05_resnet50_3d_regression.ipynb ---
def _sem_over_poses(errors: torch.Tensor, pose_ids: Sequence) -> float:
    """Standard error of the mean error, treating each pose (all its images) as one sample."""
    per_pose: dict = {}
    for e, pid in zip(errors.tolist(), pose_ids):
        per_pose.setdefault(pid, []).append(e)
    means = np.array([np.mean(v) for v in per_pose.values()])
    return float(means.std(ddof=1) / np.sqrt(len(means))) if len(means) > 1 else float("nan")


def compare_splits(records: Sequence[dict], *, fractions=(0.6, 0.2, 0.2), image_size: int = 128,
                   epochs: int = 5, batch_size: int = 32, lr: float = 1e-4,
                   weight_decay: float = 1e-4, pretrained: bool = False, loss: str = "mse",
                   dropout: float = 0.5, geometric_aug: bool = True,
                   codec: RootRelativeCodec | None = None, align=None, arch: str = "resnet50",
                   seed: int = 0, device=None, max_steps: int | None = None,
                   progress: bool = False, log=print) -> list[dict]:
    """One dict per split (random per image, grouped by pose): sizes, leak, the test
    :func:`pose3d_metrics`, ``mpjpe_sem`` (over test *poses*) and ``mpjpe_(un)seen_poses``."""
    records = list(records)
    codec = codec or RootRelativeCodec()
    cache = build_image_cache(records, image_size, progress=progress, log=log)
    extras = pose3d_extras(records)
    position = {id(r): i for i, r in enumerate(records)}
    splits = {"random per image": random_split(records, fractions, seed),
              "grouped by pose": grouped_split(records, fractions, "pose_id", seed)}
    n_train = min(len(parts[0]) for parts in splits.values())
    rows = []
    for name, (train, _, test) in splits.items():
        if len(train) > n_train:  # same budget: drop a random few (no pose can leak this way)
            keep = np.sort(np.random.default_rng(seed).permutation(len(train))[:n_train])
            train = [train[i] for i in keep]
        leak = count_pose_leak(train, test)
        env.seed_everything(seed)  # same initial weights for both
        model = build_pose3d_model(pretrained, dropout=dropout, arch=arch, log=None)
        prep = pose3d_prepare_batch(codec, pose3d_augment(geometric_aug))
        train_loader, test_loader = make_loaders(
            CachedKeypointDataset(cache, [position[id(r)] for r in train], extras),
            CachedKeypointDataset(cache, [position[id(r)] for r in test], extras),
            batch_size=batch_size, device=device)
        train_config = TrainConfig(epochs=epochs, lr=lr, weight_decay=weight_decay, device=device,
                                   seed=seed, best_metric="train_loss", max_steps=max_steps,
                                   live_plot=False, progress=progress, log=None)
        history = fit(model, train_loader, None, train_config, loss_fn=pose3d_loss(loss),
                      prepare_batch=prep)
        meter = Pose3DMeter(codec, align=align)
        metrics = evaluate(model, test_loader, prepare_batch=prep, metrics=meter, device=device,
                           progress=progress)
        a = meter.arrays()
        train_poses = {r["pose_id"] for r in train}
        seen = torch.tensor([records[int(i)]["pose_id"] in train_poses for i in a["index"]])
        err = per_sample_epe(a["pred"], a["gt"])  # mean over joints, per image
        row = {"split": name, "train_images": len(train), "test_images": len(test),
               "test_poses_in_train": f"{leak['leaked_groups']}/{leak['groups']}",
               "leaked_fraction": leak["leaked_fraction"],
               "train_loss": history[-1]["train_loss"], **metrics,
               "mpjpe_sem": _sem_over_poses(err, [records[int(i)]["pose_id"] for i in a["index"]]),
               "n_seen_poses": int(seen.sum()), "n_unseen_poses": int((~seen).sum()),
               "mpjpe_seen_poses": float(err[seen].mean()) if seen.any() else float("nan"),
               "mpjpe_unseen_poses": float(err[~seen].mean()) if (~seen).any() else float("nan")}
        rows.append(row)
        if log:
            log(f"{name:17s} train {len(train):5d} images | test {len(test):4d} images, "
                f"{leak['leaked_groups']}/{leak['groups']} test poses also in train | "
                f"test MPJPE {metrics['mpjpe']:.1f} mm, PA-MPJPE {metrics['pa_mpjpe']:.1f} mm")
    return rows


# --- from notebooks/05_resnet50_3d_regression.ipynb ---
def load_pose3d_model(path, device=None, log=print, codec_class=None):
    """``(model in eval mode, codec, checkpoint)`` from a checkpoint carrying :func:`run_config`."""
    ckpt = load_checkpoint(path)
    cfg = ckpt.get("config") or {}
    if cfg.get("task") != "pose3d":
        raise CheckpointError(f"{path} was not written by notebook 05's training (its config has "
                              f"task={cfg.get('task')!r}); pass TrainConfig(settings=run_config(...))")
    model = ResNetPose3D(hidden=cfg["hidden"], dropout=cfg["dropout"],
                         arch=cfg.get("arch", "resnet50"))
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint {path} does not fit ResNetPose3D: {err}") from err
    device = torch.device(device) if device is not None else env.pick_device()
    if log:
        log(f"loaded {path}: epoch {ckpt.get('epoch')}, image size {cfg['image_size']}")
    codec = (codec_class or RootRelativeCodec)(
        **{k[len("codec_"):]: v for k, v in cfg.items() if k.startswith("codec_")})
    return model.to(device).eval(), codec, ckpt


def load_input_image(image, image_size: int) -> np.ndarray:
    """An image file (decoded as the training cache does) or RGB array -> ``(S, S, 3)`` uint8."""
    if isinstance(image, (str, Path)):
        record = {"image_path": str(image), "keypoints": [0.0] * 2 * NUM_HAND_JOINTS}
        return np.asarray(build_image_cache([record], image_size, progress=False,
                                            log=None).images[0])
    from PIL import Image

    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB array, got {array.shape} {array.dtype}")
    return np.asarray(Image.fromarray(array).resize((image_size, image_size),
                                                    Image.Resampling.BILINEAR))


@torch.no_grad()
def predict_image(model: nn.Module, image, image_size: int, codec,
                  scale: float | None = None, device=None) -> np.ndarray:
    """``(21, 3)`` joints in **metres, relative to joint 9**; ``scale``: for a normalising codec."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    x = torch.from_numpy(load_input_image(image, image_size).copy()).permute(2, 0, 1)[None]
    x = x.to(device).float().div(255)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    was_training = model.training
    model.eval()
    try:
        out = model((x - mean) / std).float().cpu()
    finally:
        model.train(was_training)
    return torch.as_tensor(codec.decode(out, scale))[0].numpy()
