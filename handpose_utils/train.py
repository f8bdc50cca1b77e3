"""Train notebook 03's (``hands``) or 06's (``coco``) recipe from the command line, with the
notebook's GPU, CPU or smoke-mode defaults (``--help`` lists them; the README shows the commands).

Under ``torchrun`` each of N processes trains on its own 1/N of the images, DDP averages the
gradients, and rank 0 alone evaluates, prints and writes the checkpoints; ``--batch-size`` is the
**global** batch. A checkpoint holds the plain model, so ``--resume`` continues a run with any
number of processes. Rank 0 ends with one line ``RESULT {json}``: the run, its final training
loss and the validation metrics of ``best.pth``."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from collections import namedtuple
from pathlib import Path

import numpy as np
import torch

from . import env
from .backbones import BACKBONES
from .heatmaps import DECODE_MODES

__all__ = ["OPTIONS", "TASKS", "defaults", "build_parser", "parser", "main", "batch_plan"]


# A default that depends on the machine; smoke None: the machine's.
By = namedtuple("By", "gpu cpu smoke", defaults=(None,))


def _ints(text: str) -> tuple:
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


def _shared(epochs: By, lr: float, datasets: tuple) -> list[tuple]:
    return [
        ("data", str, None, "data folder; default: HANDPOSE_DATA, else the course's data/"),
        ("run_dir", str, None, "checkpoint folder; default: one named after the run in runs/"),
        ("device", str, None, "cpu, cuda or mps; default: HANDPOSE_DEVICE, else CUDA if there "
         "is a GPU (under torchrun: GPU LOCAL_RANK)"),
        ("epochs", int, epochs, "epochs (with --resume: in total, finished ones included)"),
        ("batch_size", int, By(32, 32, 8), "the GLOBAL batch, split evenly over the processes "
         "(with --per-process-batch: each process's)"),
        ("lr", float, lr, "learning rate (with --per-process-batch: times the processes)"),
        ("per_process_batch", bool, False, "--batch-size per process: the global batch and the "
         "learning rate grow with the processes"),
        ("sync_bn", bool, False, "SyncBatchNorm over every process's samples (CUDA, several "
         "processes; helps small per-process batches)"),
        ("resume", bool, True, "continue from RUN_DIR/last.pth (any number of processes); "
         "--no-resume starts over (the old files move aside)"),
        ("restart_schedule", bool, False, "with --resume and more --epochs: a new cosine from "
         "--lr over the added epochs (else the finished one continues at its last, low rate)"),
        ("max_steps", _optional_int, None, "batches per epoch (default: all)"),
        ("seed", int, 0, "seed of the data, the weights and the augmentation"),
        ("dataset", datasets, "synthetic", "synthetic (generated here) or the real data set"),
        ("download", bool, False, "download the real data set first"),
    ]


# Each recipe's options: (name, type or choices, default, help), in --help's order.
OPTIONS = {
    "hands": _shared(By(30, 14, 1), 3e-3, ("synthetic", "freihand")) + [
        ("model", str, "unet_softargmax", "regressor (models.MODEL_NAMES)"),
        ("n_poses", int, By(3000, 3000, 12), "synthetic data: unique poses (x4 versions)"),
        ("input_size", int, By(128, 80, 64), "side of the cached input images (pixels)"),
        ("warmup_epochs", int, 1, "linear warm-up epochs before the cosine (not tied to "
         "--epochs, so a resumed run may add epochs)"),
    ],
    "coco": _shared(By(20, 6, 1), 1e-3, ("synthetic", "coco")) + [
        ("use_train2017", bool, False, "--dataset coco: also train2017 (18 GB); else val2017 "
         "is split"),
        ("n_train_images", int, By(2000, 2000, 6), "synthetic: training images (1 to 5 people "
         "each)"),
        ("n_val_images", int, By(200, 200, 3), "synthetic: validation images"),
        ("image_size", _ints, By((320, 256), (320, 256), (160, 128)), "synthetic image size WxH"),
        ("input_size", _ints, By((192, 256), (96, 128), (64, 96)), "model input WxH, multiples "
         "of 32"),
        ("sigma", float, 2.0, "heatmap Gaussian sigma, in heatmap pixels"),
        ("half_body_p", float, 0.0, "HRNet's half-body augmentation probability"),
        ("backbone", BACKBONES, By("resnet50", "resnet18"), "the heatmap model's trunk "
         "(hrnet_w32 needs timm)"),
        ("colour_aug", bool, True, "notebook 06's colour changes in training"),
        ("pretrained", bool, By(True, True, False), "ImageNet weights (offline: random weights, "
         "with a note)"),
        ("deconv", _ints, By((256,) * 3, (128,) * 3), "deconvolution channels, e.g. 256,256,256"),
        ("schedule", ("step", "cosine"), By("step", "cosine"), "step (StepLR(10, 0.5), the "
         "reference's) or cosine"),
        ("decode", DECODE_MODES, "quarter", "heatmap decoding for the final AP: argmax, quarter "
         "or dark"),
        ("flip_test", bool, True, "flip test in the final AP"),
        ("num_workers", _optional_int, None, "DataLoader workers per process"),
    ],
}
TASKS = {"hands": "Notebook 03's recipe (models.hands_recipe): its soft-argmax U-Net on "
                  "FreiHAND-layout hands; PCK and EPE.",
         "coco": "Notebook 06's recipe (models_heatmap.coco_recipe): SimpleBaseline on "
                 "COCO-layout person keypoints; OKS AP."}
# notebook 06's COLOUR_AUG
COLOUR_AUG = {"brightness": 0.3, "contrast": 0.3, "saturation": 0.3, "grayscale_p": 0.1}


def _pick(default, on_gpu: bool, smoke: bool):
    if not isinstance(default, By):
        return default
    if smoke and default.smoke is not None:
        return default.smoke
    return default.gpu if on_gpu else default.cpu


def defaults(task: str, on_gpu: bool, smoke: bool) -> dict:
    """The recipe's settings on a GPU or a CPU, or in smoke mode."""
    return {name: _pick(default, on_gpu, smoke) for name, _, default, _ in OPTIONS[task]}


def _show(value) -> str:
    if isinstance(value, tuple):
        return "x".join(map(str, value)) if len(value) == 2 else ",".join(map(str, value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


_METAVARS = {int: "N", _optional_int: "N", float: "X", _ints: "C,C,C"}


def parser(task: str) -> argparse.ArgumentParser:
    """One recipe's parser, from its table: each help names its defaults (here; GPU, CPU, smoke)."""
    here = defaults(task, env.pick_device().type == "cuda", env.is_smoke())
    p = argparse.ArgumentParser(
        prog=f"python -m handpose_utils.train {task}", description=TASKS[task],
        epilog="Several processes: torchrun --nproc_per_node N -m handpose_utils.train "
               f"{task} [options]. Rank 0 prints the log and a final line RESULT {{json}}.")
    for name, kind, default, help in OPTIONS[task]:
        if here[name] is not None:
            machines = {m: _show(_pick(default, m == "GPU", m == "smoke"))
                        for m in ("GPU", "CPU", "smoke")}
            variants = ", ".join(f"{m} {v}" for m, v in machines.items())
            help += f" (default here: {_show(here[name])}" + (
                f"; {variants})" if len(set(machines.values())) > 1 else ")")
        kwargs = {"dest": name, "default": None, "help": help}
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif isinstance(kind, tuple):
            kwargs["choices"] = kind
        else:
            kwargs.update(type=kind, metavar="WxH" if "size" in name and kind is _ints
                          else _METAVARS.get(kind, name.upper()))
        p.add_argument("--" + name.replace("_", "-"), **kwargs)
    p.add_argument("--dry-run", action="store_true",
                   help="print the resolved settings and the batch / learning-rate plan, then "
                        "exit without training")
    return p


def build_parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m handpose_utils.train",
        description="Train a course model from the command line, in one process or several "
                    "(torchrun --nproc_per_node N -m handpose_utils.train TASK).")
    sub = top.add_subparsers(dest="task", required=True, metavar="{hands,coco}")
    for task, description in TASKS.items():
        sub.add_parser(task, help=description, add_help=False)
    return top


def resolve(task: str, argv: list[str]) -> tuple[object, bool]:
    """``(settings, dry_run)``: the given options over the defaults of ``--device`` (or smoke's)."""
    args = parser(task).parse_args(argv)
    given = {k: v for k, v in vars(args).items() if k != "dry_run" and v is not None}
    device = env.pick_device(given.get("device"))
    s = argparse.Namespace(**{**defaults(task, device.type == "cuda", env.is_smoke()), **given})
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
    "per_process_batch", "lr", "rule"}``. The global batch is split evenly and ``lr`` stays; with
    ``per_process`` each process takes ``batch_size`` and ``lr`` scales linearly (Goyal et al.)."""
    n = world_size
    if per_process:
        total, scaled = batch_size * n, lr * n
        return {"global_batch": total, "per_process_batch": batch_size, "lr": scaled,
                "rule": f"--per-process-batch: {n} process(es) x {batch_size} = global batch "
                        f"{total}; linear scaling rule: lr = {lr:g} x {n} = {scaled:g}"}
    if batch_size % n:
        raise SystemExit(f"error: the global batch {batch_size} does not split evenly over {n} "
                         f"processes; choose a multiple of {n}, or --per-process-batch")
    # BatchNorm is the exception to "the same steps": each process normalises its own images
    # (a 4-image batch's statistics, not 8's) unless SyncBatchNorm pools them
    bn = ("" if n == 1 else f", except BatchNorm, whose statistics each process takes over its own "
          f"{batch_size // n} image(s) (--sync-bn pools them, on GPUs)")
    return {"global_batch": batch_size, "per_process_batch": batch_size // n, "lr": lr,
            "rule": f"global batch {batch_size} = {n} process(es) x {batch_size // n}; lr {lr:g} "
                    f"as given: the same steps as one process with a batch of {batch_size}{bn}"}


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


def _engine_options(s, dist, device, log, run_name: str) -> dict:
    """The ``TrainConfig`` fields the command line sets alike for both recipes."""
    return {"device": device, "checkpoint_dir": Path(s.run_dir or env.runs_dir() / run_name),
            "resume": s.resume, "max_steps": s.max_steps, "seed": s.seed, "live_plot": False,
            "log": log, "sync_bn": s.sync_bn, "progress": dist.is_main,
            "restart_schedule": s.restart_schedule}


def _fit(model, train_loader, val_loader, config, dist, **fit_kwargs):
    """``engine.fit`` and ``result``: the run folder, where training resumed from (``last.pth``
    before) and, on rank 0, the best epoch, whose weights ``model`` then holds."""
    from .checkpoints import CheckpointError, load_checkpoint
    from .engine import fit
    run_dir = Path(config.checkpoint_dir)
    result = {"run_dir": str(run_dir), "resumed_from_epoch": 0, "resumed_world_size": None}
    if config.resume and (run_dir / "last.pth").is_file():
        with contextlib.suppress(CheckpointError):  # fit says what is wrong
            ckpt = load_checkpoint(run_dir / "last.pth")
            result.update(resumed_from_epoch=int(ckpt["epoch"]), resumed_world_size=(
                ckpt.get("config") or {}).get("world_size", 1))
    if config.epochs == 0 and result["resumed_from_epoch"] == 0:  # a RESULT of random weights
        raise CheckpointError(f"--epochs 0 and no finished epoch in {run_dir}: nothing to "
                              "evaluate. Train with --epochs 1 or more, or point --run-dir at a "
                              "run to evaluate (with --resume).")
    history = fit(model, train_loader, val_loader, config, **fit_kwargs)
    if dist.is_main and (run_dir / "best.pth").is_file():
        result["best_epoch"] = load_checkpoint(run_dir / "best.pth", model)["best"]["epoch"]
    return history, result


def _run_hands(s: argparse.Namespace, dist, device, plan, log):
    from . import data as D
    from . import engine, metrics, models, records
    from .models import hands_recipe
    from .prepare import prepare_splits
    train_recs, val_recs, _ = _in_turn(lambda: prepare_splits(
        s.dataset, s.data, n_poses=s.n_poses, seed=s.seed, download=s.download, log=log),
        dist)
    log(f"train {len(train_recs)} | val {len(val_recs)} images")
    # Each process caches only the images it trains on, and rank 0 alone (it evaluates) the
    # validation images: the memory per process falls with the number of processes.
    shard = (dist.rank, dist.world_size) if dist.world_size > 1 else None
    train_cache = D.build_image_cache(train_recs, s.input_size, progress=dist.is_main, log=log,
                                      shard=shard)
    val_cache = (D.build_image_cache(val_recs, s.input_size, progress=dist.is_main, log=log)
                 if dist.is_main else None)
    held = [(0, 0) if c is None else (len(c), c.images.nbytes / 1e6)
            for c in (train_cache, val_cache)]
    print(f"images in memory: rank {dist.rank} holds {held[0][0] + held[1][0]} images, "
          f"{held[0][1]:.2f} MB (train shard) + {held[1][1]:.2f} MB (validation)", flush=True)
    train_loader, val_loader = D.make_loaders(train_cache, val_cache, device=device, seed=s.seed,
                                              batch_size=plan["per_process_batch"])
    env.seed_everything(s.seed)
    model = models.build_model(s.model)
    config, fit_kwargs = hands_recipe(
        model, s.epochs, lr=plan["lr"], warmup_epochs=s.warmup_epochs,
        settings={"model": s.model, "input_size": s.input_size, "dataset": s.dataset,
                  "n_poses": s.n_poses, "global_batch": plan["global_batch"]},
        **_engine_options(s, dist, device, log,
                          f"train_hands_{s.dataset}_{s.model}_{s.input_size}px"))
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


def _run_coco(s: argparse.Namespace, dist, device, plan, log):
    from . import coco_eval
    from .data import make_loaders
    from .heatmaps import HeatmapCodec
    from .models_heatmap import build_heatmap_model, coco_recipe
    from .prepare.coco import prepare_coco
    from .topdown import TopDownAugment, TopDownDataset, mean_pose_results
    data = _in_turn(lambda: prepare_coco(
        s.dataset, s.data, n_train=s.n_train_images, n_val=s.n_val_images, seed=s.seed,
        width=s.image_size[0], height=s.image_size[1], download=s.download,
        use_train2017=s.use_train2017, progress=dist.is_main, log=log), dist)
    train_records, val_records = data["train"], data["val"]
    ann_file, val_ids = data["val_ann_file"], data["val_image_ids"]
    codec = HeatmapCodec.for_input(tuple(s.input_size), stride=4, sigma=s.sigma,
                                   decode_mode=s.decode)
    train_ds = TopDownDataset(train_records, codec, train=True,
                              augment=TopDownAugment(half_body_p=s.half_body_p))
    val_ds = TopDownDataset(val_records, codec)
    log(f"{len(train_ds)} training crops, {len(val_ds)} validation crops")
    workers = s.num_workers if s.num_workers is not None else env.default_num_workers()
    train_loader, val_loader = make_loaders(train_ds, val_ds, batch_size=plan["per_process_batch"],
                                            num_workers=workers, device=device, seed=s.seed)
    env.seed_everything(s.seed)
    # Only rank 0 asks for ImageNet weights (one download); DDP copies its weights to the
    # others when it wraps the model.
    model = build_heatmap_model(s.backbone, pretrained=s.pretrained and dist.is_main,
                                deconv_channels=tuple(s.deconv), log=log)
    pretrained = bool(env.from_rank0(model.pretrained))
    log(f"heatmap model on {s.backbone}: ImageNet weights: {pretrained}")
    input_name = f"{s.input_size[0]}x{s.input_size[1]}"
    settings = {"dataset": s.dataset, "backbone": s.backbone, "pretrained": pretrained,
                "input": input_name, "deconv": ",".join(map(str, s.deconv)), "sigma": s.sigma,
                "global_batch": plan["global_batch"], "schedule": s.schedule,
                "train_people": len(train_ds), "colour_aug": s.colour_aug}
    config, fit_kwargs = coco_recipe(
        model, codec, ann_file, val_ids, s.epochs, lr=plan["lr"], schedule=s.schedule,
        colour_aug=COLOUR_AUG if s.colour_aug else None, settings=settings,
        **_engine_options(s, dist, device, log,
                          f"train_coco_{s.dataset}_{s.backbone}_{input_name}"))
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
    log = print if dist.is_main else (lambda *args, **kwargs: None)  # rank 0 alone prints
    if settings.sync_bn and (device.type != "cuda" or dist.world_size == 1):
        env.cleanup_distributed()
        raise SystemExit(f"error: --sync-bn needs several processes on CUDA GPUs (torchrun); this "
                         f"run has {dist.world_size} process(es) on {device.type}, where each "
                         "process's BatchNorm keeps its own statistics. Drop --sync-bn.")
    try:
        plan = batch_plan(settings.batch_size, settings.lr, dist.world_size,
                          settings.per_process_batch)
        log(f"{task}: {env.describe()}")
        log(f"processes: {dist.world_size} ({dist.backend or 'single process'}) | device "
            f"{device} | {plan['rule']}")
        log("settings: " + ", ".join(f"{k}={_show(v)}" for k, v in vars(settings).items()))
        base = {"task": task, "world_size": dist.world_size, "global_batch": plan["global_batch"],
                "per_process_batch": plan["per_process_batch"], "lr": plan["lr"],
                "lr_rule": plan["rule"], "epochs": settings.epochs}
        result = {"dry_run": True}
        if not dry_run:
            from .checkpoints import CheckpointError
            try:
                run = _run_hands if task == "hands" else _run_coco
                history, result = run(settings, dist, device, plan, log)
            except CheckpointError as err:
                log(f"error: {err}")
                return 2
            start = result["resumed_from_epoch"] + 1
            trained = [r for r in history if r["epoch"] >= start]
            result.update(start_epoch=start, epochs_done=len(history),
                          epochs_trained_now=len(trained),
                          final_train_loss=history[-1]["train_loss"] if history else None,
                          train_s=sum(r["train_s"] for r in trained),
                          wall_s=time.perf_counter() - t0)
        # NaN (COCO's AP of an empty area range) as null: the RESULT line is strict JSON
        result = json.loads(json.dumps({**base, **result}), parse_constant=lambda _: None)
        log("RESULT " + json.dumps(result, allow_nan=False))
        # The others wait here while rank 0 evaluates, so that every process tears the group
        # down together: a process that destroyed its gloo group while rank 0 was still busy
        # now and then aborted on exit ("terminate called without an active exception").
        env.barrier()
        return 0
    finally:
        env.cleanup_distributed()


if __name__ == "__main__":
    sys.exit(main())
