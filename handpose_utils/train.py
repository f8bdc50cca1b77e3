"""Train a course model from the command line, in one process or on several GPUs (``torchrun``).

Two recipes, each built by its notebook's own function, with the notebook's defaults (the GPU
sizes on a GPU, the CPU sizes without one, the tiny ones with ``HANDPOSE_SMOKE=1``):

* ``hands``: notebook 03's ``models.hands_recipe``, by default its soft-argmax U-Net, on the
  FreiHAND-layout data (synthetic by default), scored with PCK and EPE.
* ``coco``: notebook 06's ``models_heatmap.coco_recipe``, SimpleBaseline top-down on COCO-layout
  person keypoints, scored with COCO's OKS AP (pycocotools).

::

    python -m handpose_utils.train hands                      # one process (GPU if there is one)
    python -m handpose_utils.train coco --epochs 40 --batch-size 64
    torchrun --standalone --nproc_per_node 4 -m handpose_utils.train coco   # 4 GPUs, one machine
    torchrun --nnodes 2 --nproc_per_node 4 --rdzv_id pose1 --rdzv_backend c10d \\
        --rdzv_endpoint HOST:29500 -m handpose_utils.train coco  # the same on both machines

With N processes each trains on its own 1/N of the images, ``DistributedDataParallel`` averages
the gradients, and rank 0 alone evaluates, prints and writes the checkpoints. ``--batch-size`` is
the **global** batch, split over the processes (``--per-process-batch``: each process's, with the
learning rate scaled by N). A checkpoint holds the plain model, so ``--resume`` continues a run
with any number of processes. Every option is a field of :class:`HandsSettings` or
:class:`CocoSettings` (``--help`` lists the defaults here and on a GPU, a CPU and in smoke mode).
Rank 0 ends with one line ``RESULT {json}``: the run, its final training loss and the validation
metrics of ``best.pth``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import env
from .backbones import BACKBONES
from .heatmaps import DECODE_MODES

__all__ = ["HandsSettings", "CocoSettings", "TASKS", "build_parser", "parser", "main",
           "batch_plan"]


def _opt(help: str, **kwargs):
    """A settings field with its ``--help`` text."""
    return field(metadata={"help": help}, **kwargs)


@dataclass
class _Common:
    """Options both recipes share. ``None`` where the default depends on the machine."""

    data: str | None = _opt("data folder; default: HANDPOSE_DATA, else the course's data/",
                            default=None)
    run_dir: str | None = _opt("checkpoint folder; default: one named after the run in runs/",
                               default=None)
    device: str | None = _opt("cpu, cuda or mps; default: HANDPOSE_DEVICE, else CUDA if there "
                              "is a GPU (under torchrun: GPU LOCAL_RANK)", default=None)
    epochs: int = _opt("epochs (with --resume: in total, finished ones included)", default=1)
    batch_size: int = _opt("the GLOBAL batch, split evenly over the processes (with "
                           "--per-process-batch: each process's)", default=8)
    lr: float = _opt("learning rate (with --per-process-batch: times the processes)",
                     default=1e-3)
    per_process_batch: bool = _opt("--batch-size per process: the global batch and the "
                                   "learning rate grow with the processes", default=False)
    sync_bn: bool = _opt("SyncBatchNorm over every process's samples (CUDA, several "
                         "processes; helps small per-process batches)", default=False)
    resume: bool = _opt("continue from RUN_DIR/last.pth (any number of processes); "
                        "--no-resume starts over (the old files move aside)", default=True)
    max_steps: int | None = _opt("batches per epoch (default: all)", default=None)
    seed: int = _opt("seed of the data, the weights and the augmentation", default=0)
    dataset: str = _opt("synthetic (generated here) or the real data set", default="synthetic")
    download: bool = _opt("download the real data set first", default=False)


@dataclass
class HandsSettings(_Common):
    """Notebook 03's recipe (models.hands_recipe): its soft-argmax U-Net on FreiHAND-layout
    hands; PCK and EPE."""

    model: str = _opt("regressor (models.MODEL_NAMES)", default="unet_softargmax")
    n_poses: int = _opt("synthetic data: unique poses (x4 versions)", default=3000)
    input_size: int = _opt("side of the cached input images (pixels)", default=128)
    warmup_epochs: int = _opt("linear warm-up epochs before the cosine (not tied to --epochs, "
                              "so a resumed run may add epochs)", default=1)

    @classmethod
    def defaults(cls, on_gpu: bool, smoke: bool) -> HandsSettings:
        if smoke:
            return cls(epochs=1, batch_size=8, lr=3e-3, n_poses=12, input_size=64)
        return cls(epochs=30 if on_gpu else 14, batch_size=32, lr=3e-3, n_poses=3000,
                   input_size=128 if on_gpu else 80)


@dataclass
class CocoSettings(_Common):
    """Notebook 06's recipe (models_heatmap.coco_recipe): SimpleBaseline on COCO-layout person
    keypoints; OKS AP."""

    use_train2017: bool = _opt("--dataset coco: also train2017 (18 GB); else val2017 is split",
                               default=False)
    n_train_images: int = _opt("synthetic: training images (1 to 5 people each)", default=2000)
    n_val_images: int = _opt("synthetic: validation images", default=200)
    image_size: tuple = _opt("synthetic image size WxH", default=(320, 256))
    input_size: tuple = _opt("model input WxH, multiples of 32", default=(192, 256))
    sigma: float = _opt("heatmap Gaussian sigma, in heatmap pixels", default=2.0)
    half_body_p: float = _opt("HRNet's half-body augmentation probability", default=0.0)
    backbone: str = _opt("the heatmap model's trunk (hrnet_w32 needs timm)",
                         default="resnet50")
    colour_aug: bool = _opt("notebook 06's colour changes in training", default=True)
    pretrained: bool = _opt("ImageNet weights (offline: random weights, with a note)",
                            default=True)
    deconv: tuple = _opt("deconvolution channels, e.g. 256,256,256", default=(256, 256, 256))
    schedule: str = _opt("step (StepLR(10, 0.5), the reference's) or cosine", default="step")
    decode: str = _opt("heatmap decoding for the final AP: argmax, quarter or dark",
                       default="quarter")
    flip_test: bool = _opt("flip test in the final AP", default=True)
    num_workers: int | None = _opt("DataLoader workers per process", default=None)

    @classmethod
    def defaults(cls, on_gpu: bool, smoke: bool) -> CocoSettings:
        machine = dict(backbone="resnet50" if on_gpu else "resnet18",
                       deconv=(256, 256, 256) if on_gpu else (128, 128, 128),
                       schedule="step" if on_gpu else "cosine")
        if smoke:
            return cls(epochs=1, batch_size=8, lr=1e-3, n_train_images=6, n_val_images=3,
                       image_size=(160, 128), input_size=(64, 96), pretrained=False, **machine)
        return cls(epochs=20 if on_gpu else 6, batch_size=32, lr=1e-3,
                   input_size=(192, 256) if on_gpu else (96, 128), **machine)


TASKS = {"hands": HandsSettings, "coco": CocoSettings}
CHOICES = {"dataset": {"hands": ("synthetic", "freihand"), "coco": ("synthetic", "coco")},
           "schedule": {"coco": ("step", "cosine")}, "decode": {"coco": DECODE_MODES},
           "backbone": {"coco": BACKBONES}}
# notebook 06's COLOUR_AUG
COLOUR_AUG = {"brightness": 0.3, "contrast": 0.3, "saturation": 0.3, "grayscale_p": 0.1}


# --------------------------------------------------------------------------------------------
# Options from the settings dataclasses


def _parse_tuple(text: str) -> tuple:
    """``192x256`` or ``256,256,256`` -> a tuple of ints."""
    parts = text.replace("x", ",").replace("X", ",").split(",")
    try:
        return tuple(int(p) for p in parts if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected integers such as 192x256 or 256,256,256") from None


def _optional_int(text: str) -> int | None:
    if text.strip().lower() in ("none", "all", ""):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer (or 'none')") from None


def _show(value) -> str:
    if isinstance(value, tuple):
        return "x".join(map(str, value)) if len(value) == 2 else ",".join(map(str, value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _variants(cls, name: str) -> str:
    """``GPU 30, CPU 14, smoke 1`` where the defaults differ by machine; else empty."""
    values = {"GPU": cls.defaults(True, False), "CPU": cls.defaults(False, False),
              "smoke": cls.defaults(False, True)}
    shown = {k: _show(getattr(v, name)) for k, v in values.items()}
    if len(set(shown.values())) == 1:
        return ""
    return ", ".join(f"{k} {v}" for k, v in shown.items())


_TYPES = {"int | None": (_optional_int, "N"), "int": (int, "N"), "float": (float, "X")}


def parser(task: str, defaults=None) -> argparse.ArgumentParser:
    """The option parser of one recipe, generated from its settings dataclass (``defaults``:
    the values shown as "here"; by default this machine's)."""
    cls = TASKS[task]
    if defaults is None:
        defaults = cls.defaults(env.pick_device().type == "cuda", env.is_smoke())
    p = argparse.ArgumentParser(
        prog=f"python -m handpose_utils.train {task}", description=" ".join(cls.__doc__.split()),
        epilog="Several processes: torchrun --nproc_per_node N -m handpose_utils.train "
               f"{task} [options]. Rank 0 prints the log and a final line RESULT {{json}}.")
    for f in dataclasses.fields(cls):
        here, variants = getattr(defaults, f.name), _variants(cls, f.name)
        extra = "" if here is None else (
            f" (default here: {_show(here)}" + (f"; {variants})" if variants else ")"))
        kwargs = {"dest": f.name, "default": None, "help": f.metadata["help"] + extra}
        if f.type == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        elif f.type == "tuple":
            kwargs.update(type=_parse_tuple, metavar="WxH" if "size" in f.name else "C,C,C")
        else:
            kind, metavar = _TYPES.get(f.type, (str, f.name.upper()))
            kwargs.update(type=kind, metavar=metavar)
        if choices := CHOICES.get(f.name, {}).get(task):
            kwargs.pop("metavar", None)
            kwargs["choices"] = choices
        p.add_argument("--" + f.name.replace("_", "-"), **kwargs)
    p.add_argument("--dry-run", action="store_true",
                   help="print the resolved settings and the batch / learning-rate plan, then "
                        "exit without training")
    return p


def build_parser() -> argparse.ArgumentParser:
    """``python -m handpose_utils.train {hands,coco} [options]``."""
    top = argparse.ArgumentParser(
        prog="python -m handpose_utils.train",
        description="Train a course model from the command line, in one process or several "
                    "(torchrun --nproc_per_node N -m handpose_utils.train TASK).")
    sub = top.add_subparsers(dest="task", required=True, metavar="{hands,coco}")
    for task in TASKS:
        sub.add_parser(task, help=" ".join(TASKS[task].__doc__.split()), add_help=False)
    return top


def resolve(task: str, argv: list[str]) -> tuple[object, bool]:
    """``(settings, dry_run)`` from the options: the given ones over this machine's defaults
    (GPU or CPU, as ``--device`` says; smoke mode's with ``HANDPOSE_SMOKE=1``)."""
    args = parser(task).parse_args(argv)
    given = {k: v for k, v in vars(args).items() if k != "dry_run" and v is not None}
    device = env.pick_device(given.get("device"))
    s = dataclasses.replace(TASKS[task].defaults(device.type == "cuda", env.is_smoke()), **given)
    for name in ("epochs", "batch_size"):
        if getattr(s, name) < (0 if name == "epochs" else 1):
            raise SystemExit(f"error: --{name.replace('_', '-')} {getattr(s, name)} is too small")
    if not (s.lr > 0 and math.isfinite(s.lr)):
        raise SystemExit(f"error: --lr {s.lr} must be a positive number")
    if task == "coco":
        if len(s.input_size) != 2 or any(v % 32 for v in s.input_size):
            raise SystemExit(f"error: --input-size {_show(s.input_size)} must be WxH, both "
                             "multiples of 32 (the backbone's stride), e.g. 192x256")
        if len(s.image_size) != 2:
            raise SystemExit(f"error: --image-size {_show(s.image_size)} must be WxH")
    return s, args.dry_run


def batch_plan(batch_size: int, lr: float, world_size: int, per_process: bool) -> dict:
    """How ``batch_size`` and ``lr`` apply to ``world_size`` processes: ``{"global_batch",
    "per_process_batch", "lr", "rule"}``. By default the global batch is split (it must divide
    evenly) and ``lr`` stays; with ``per_process`` each process takes ``batch_size`` and the
    learning rate scales linearly: ``lr * world_size`` (Goyal et al., 2017)."""
    if per_process:
        scaled = lr * world_size
        return {"global_batch": batch_size * world_size, "per_process_batch": batch_size,
                "lr": scaled,
                "rule": (f"--per-process-batch: {world_size} process(es) x {batch_size} = "
                         f"global batch {batch_size * world_size}; linear scaling rule: lr = "
                         f"{lr:g} x {world_size} = {scaled:g}")}
    if batch_size % world_size:
        raise SystemExit(
            f"error: the global batch {batch_size} does not split evenly over {world_size} "
            f"processes; choose a multiple of {world_size}, or --per-process-batch")
    per = batch_size // world_size
    return {"global_batch": batch_size, "per_process_batch": per, "lr": lr,
            "rule": (f"global batch {batch_size} = {world_size} process(es) x {per}; lr {lr:g} "
                     f"as given: the same steps as one process with a batch of {batch_size}")}


# --------------------------------------------------------------------------------------------
# Running the notebooks' recipes, in one process or several


def _in_turn(fn, dist: env.Distributed):
    """``fn()`` in every process, rank 0 first, then the first process of every other machine,
    then the rest: data generated, downloaded or cached once per machine, never by two at
    once (a shared folder is filled by rank 0; the others find it ready)."""
    turns = (dist.rank == 0, dist.rank != 0 and dist.local_rank == 0, dist.local_rank != 0)
    result = None
    for mine in turns:
        if mine:
            result = fn()
        env.barrier()
    return result


def _engine_options(s, dist, device, run_dir: Path, log) -> dict:
    """The ``TrainConfig`` fields the command line sets alike for both recipes."""
    return {"device": device, "checkpoint_dir": run_dir, "resume": s.resume,
            "max_steps": s.max_steps, "seed": s.seed, "live_plot": False, "log": log,
            "sync_bn": s.sync_bn, "progress": dist.is_main}


def _fit(model, train_loader, val_loader, config, dist, **fit_kwargs):
    """``engine.fit`` with what both recipes report around it: ``(history, result)`` where
    ``result`` holds the run folder, where training resumed from (what ``last.pth`` said before)
    and, on rank 0, the best epoch, whose weights ``model`` then holds."""
    from .checkpoints import CheckpointError, load_checkpoint
    from .engine import fit

    run_dir = Path(config.checkpoint_dir)
    result = {"run_dir": str(run_dir), "resumed_from_epoch": 0, "resumed_world_size": None}
    if config.resume and (run_dir / "last.pth").is_file():
        try:
            ckpt = load_checkpoint(run_dir / "last.pth")
            result.update(resumed_from_epoch=int(ckpt["epoch"]), resumed_world_size=(
                ckpt.get("config") or {}).get("world_size", 1))
        except CheckpointError:
            pass  # fit says what is wrong
    history = fit(model, train_loader, val_loader, config, **fit_kwargs)
    if dist.is_main and (run_dir / "best.pth").is_file():
        result["best_epoch"] = load_checkpoint(run_dir / "best.pth", model)["best"]["epoch"]
    return history, result


def _run_hands(s: HandsSettings, dist, device, plan, log):
    from . import data as D
    from . import engine, metrics, records
    from .models import hands_recipe
    from .prepare import prepare_splits

    data_root = Path(s.data) if s.data else env.data_dir()
    train_recs, val_recs, _ = _in_turn(lambda: prepare_splits(
        s.dataset, data_root, n_poses=s.n_poses, seed=s.seed, download=s.download, log=log),
        dist)
    if log:
        log(f"train {len(train_recs)} | val {len(val_recs)} images")
    train_cache = D.build_image_cache(train_recs, s.input_size, progress=dist.is_main, log=log)
    val_cache = D.build_image_cache(val_recs, s.input_size, progress=dist.is_main, log=log)
    train_loader, val_loader = D.make_loaders(train_cache, val_cache,
                                              batch_size=plan["per_process_batch"],
                                              device=device, seed=s.seed)
    run_dir = Path(s.run_dir or env.runs_dir() / f"train_hands_{s.dataset}_{s.model}_"
                                                   f"{s.input_size}px")
    env.seed_everything(s.seed)
    model, config, fit_kwargs = hands_recipe(
        s.model, s.epochs, lr=plan["lr"], warmup_epochs=s.warmup_epochs,
        settings={"model": s.model, "input_size": s.input_size, "dataset": s.dataset,
                  "n_poses": s.n_poses, "global_batch": plan["global_batch"]},
        **_engine_options(s, dist, device, run_dir, log))
    history, result = _fit(model, train_loader, val_loader, config, dist, **fit_kwargs)
    if not dist.is_main:
        return history, result
    out, ex = engine.predict(model, val_loader, prepare_batch=fit_kwargs["prepare_batch"],
                             return_extras=True, device=device, progress=False)
    gt = torch.tensor(np.stack([records.keypoints_array(r) for r in val_recs]))
    vis = torch.tensor(np.stack([records.visible_array(r) for r in val_recs]))
    side = ex["orig_size"].max(1).values  # PCK@0.05 of the image size (notebook 03's)

    def scores(pred):
        return {"PCK@0.05 (image size, all joints)": metrics.pck(pred, gt, 0.05, norm=side),
                "PCK@0.05 (image size, visible joints)": metrics.pck(pred, gt, 0.05, norm=side,
                                                                     visible=vis),
                "PCK@0.1 (keypoint box, all joints)": metrics.pck(pred, gt, 0.1,
                                                                  norm=metrics.bbox_size(gt)),
                "EPE px (all joints)": metrics.epe(pred, gt),
                "AUC 0-30px (all joints)": metrics.pck_curve(pred, gt, np.linspace(0, 30, 31))[1]}

    mean_pose = torch.tensor(np.stack([records.keypoints_array(r) for r in train_recs]).mean(0))
    result["metrics"] = {k: float(v) for k, v in scores(
        D.to_original_pixels(out, ex["orig_size"])).items()}
    result["baseline"] = {k: float(v) for k, v in scores(mean_pose.expand_as(gt)).items()}
    return history, result


def _run_coco(s: CocoSettings, dist, device, plan, log):
    from . import coco_eval
    from .data import make_loaders
    from .heatmaps import HeatmapCodec
    from .models_heatmap import build_heatmap_model, coco_recipe
    from .prepare import prepare_coco
    from .topdown import TopDownAugment, TopDownDataset, mean_pose_results

    data_root = Path(s.data) if s.data else env.data_dir()
    data = _in_turn(lambda: prepare_coco(
        s.dataset, data_root, n_train=s.n_train_images, n_val=s.n_val_images, seed=s.seed,
        width=s.image_size[0], height=s.image_size[1], download=s.download,
        use_train2017=s.use_train2017, progress=dist.is_main, log=log), dist)
    train_records, val_records = data["train"], data["val"]
    ann_file, val_ids = data["val_ann_file"], data["val_image_ids"]
    codec = HeatmapCodec.for_input(tuple(s.input_size), stride=4, sigma=s.sigma,
                                   decode_mode=s.decode)
    train_ds = TopDownDataset(train_records, codec, train=True,
                              augment=TopDownAugment(half_body_p=s.half_body_p))
    val_ds = TopDownDataset(val_records, codec)
    if log:
        log(f"{len(train_ds)} training crops, {len(val_ds)} validation crops")
    workers = s.num_workers if s.num_workers is not None else env.default_num_workers()
    train_loader, val_loader = make_loaders(train_ds, val_ds,
                                            batch_size=plan["per_process_batch"],
                                            num_workers=workers, device=device, seed=s.seed)
    env.seed_everything(s.seed)
    # Only rank 0 asks for ImageNet weights (one download); DDP copies its weights to the
    # others when it wraps the model.
    model = build_heatmap_model(s.backbone, pretrained=s.pretrained and dist.is_main,
                                deconv_channels=tuple(s.deconv), log=log or (lambda m: None))
    pretrained = bool(env.from_rank0(model.pretrained))
    if log:
        log(f"heatmap model on {s.backbone}: ImageNet weights: {pretrained}")
    input_name = f"{s.input_size[0]}x{s.input_size[1]}"
    run_dir = Path(s.run_dir or env.runs_dir() / f"train_coco_{s.dataset}_{s.backbone}_"
                                                   f"{input_name}")
    settings = {"dataset": s.dataset, "backbone": s.backbone, "pretrained": pretrained,
                "input": input_name, "deconv": ",".join(map(str, s.deconv)), "sigma": s.sigma,
                "global_batch": plan["global_batch"], "schedule": s.schedule,
                "train_people": len(train_ds), "colour_aug": s.colour_aug}
    config, fit_kwargs = coco_recipe(
        model, codec, ann_file, val_ids, s.epochs, lr=plan["lr"], schedule=s.schedule,
        colour_aug=COLOUR_AUG if s.colour_aug else None, settings=settings,
        **_engine_options(s, dist, device, run_dir, log))
    history, result = _fit(model, train_loader, val_loader, config, dist, **fit_kwargs)
    if not dist.is_main:
        return history, result
    preds = coco_eval.predict_coco_results(model, val_loader, codec, modes=(s.decode,),
                                           flip_test=s.flip_test, device=device, progress=False)
    stats = coco_eval.evaluate_coco_keypoints(ann_file, preds[(s.decode, s.flip_test)],
                                              image_ids=val_ids)
    baseline = coco_eval.evaluate_coco_keypoints(
        ann_file, mean_pose_results(train_records, val_records,
                                    s.input_size[0] / s.input_size[1]), image_ids=val_ids)
    result["metrics"] = {k: stats[k] for k in ("AP", "AP50", "AP75", "APm", "APl", "AR")}
    result["metrics"]["decode"] = s.decode + (" + flip test" if s.flip_test else "")
    result["baseline"] = {"AP": baseline["AP"]}
    return history, result


RUNNERS = {"hands": _run_hands, "coco": _run_coco}


def _finite(v):
    """``v`` with every non-finite float (COCO's AP of an empty area range is NaN) as None, so
    the RESULT line is strict JSON."""
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_finite(x) for x in v]
    return v if not isinstance(v, float) or math.isfinite(v) else None


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), train, and print ``RESULT {json}`` on rank 0."""
    argv = list(sys.argv[1:] if argv is None else argv)
    t0 = time.perf_counter()
    if not argv or argv[0] not in TASKS:
        build_parser().parse_args(argv[:1] or ["--help"])  # prints help, or a bad task's error
        return 2
    task = argv[0]
    settings, dry_run = resolve(task, argv[1:])
    env.configure_threads()
    dist, device = env.init_distributed(env.pick_device(settings.device))
    log = print if dist.is_main else None
    try:
        plan = batch_plan(settings.batch_size, settings.lr, dist.world_size,
                          settings.per_process_batch)
        if log:
            log(f"{task}: {env.describe()}")
            log(f"processes: {dist.world_size} ({dist.backend or 'single process'}) | device "
                f"{device} | {plan['rule']}")
            log("settings: " + ", ".join(f"{k}={_show(v)}"
                                         for k, v in dataclasses.asdict(settings).items()))
        base = {"task": task, "world_size": dist.world_size, "global_batch": plan["global_batch"],
                "per_process_batch": plan["per_process_batch"], "lr": plan["lr"],
                "lr_rule": plan["rule"], "epochs": settings.epochs}
        if dry_run:
            if log:
                log("RESULT " + json.dumps({**base, "dry_run": True}))
            env.barrier()  # tear the group down together (see below)
            return 0
        from .checkpoints import CheckpointError

        try:
            history, result = RUNNERS[task](settings, dist, device, plan, log)
        except CheckpointError as err:
            if log:
                log(f"error: {err}")
            return 2
        if dist.is_main:
            start = result["resumed_from_epoch"] + 1
            trained = [r for r in history if r["epoch"] >= start]
            result = {**base, **result,
                      "start_epoch": start, "epochs_done": len(history),
                      "epochs_trained_now": len(trained),
                      "final_train_loss": history[-1]["train_loss"] if history else None,
                      "train_s": sum(r["train_s"] for r in trained),
                      "wall_s": time.perf_counter() - t0}
            log("RESULT " + json.dumps(_finite(result), allow_nan=False))
        # The others wait here while rank 0 evaluates, so that every process tears the group
        # down together: a process that destroyed its gloo group while rank 0 was still busy
        # now and then aborted on exit ("terminate called without an active exception").
        env.barrier()
        return 0
    finally:
        env.cleanup_distributed()


if __name__ == "__main__":
    sys.exit(main())
