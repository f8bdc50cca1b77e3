"""Command-line training (``python -m handpose_utils.train``), in one process and under
``torchrun`` with 2 gloo processes on the CPU: smoke runs of both recipes, the batch and
learning-rate plan, data sharding, and a 2-process checkpoint resumed by 1 process."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from handpose_utils import env, train
from handpose_utils.data import ImageCache, cached_loader

REPO = Path(__file__).resolve().parent.parent


def run_cli(args: list[str], data: Path, processes: int = 1, timeout: int = 300) -> tuple[dict, str]:
    """Run the command in smoke mode and return (the RESULT json, the whole output)."""
    environ = {**os.environ, "HANDPOSE_SMOKE": "1", "HANDPOSE_DATA": str(data),
               "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        environ.pop(name, None)
    if processes == 1:
        cmd = [sys.executable, "-m", "handpose_utils.train", *args]
    else:
        torchrun = shutil.which("torchrun")
        if torchrun is None:
            pytest.skip("torchrun is not on PATH")
        cmd = [torchrun, "--standalone", f"--nproc_per_node={processes}",
               "-m", "handpose_utils.train", *args]
    proc = subprocess.run(cmd, cwd=REPO, env=environ, capture_output=True, text=True,
                          timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, f"one RESULT line (rank 0's) expected:\n{out[-4000:]}"
    return json.loads(lines[0][len("RESULT "):]), out


# --------------------------------------------------------------------------------------------
# Options and the batch / learning-rate plan (in process, no training)


@pytest.mark.parametrize("task", ["hands", "coco"])
def test_help_documents_the_options(task, capsys):
    with pytest.raises(SystemExit) as stop:
        train.main([task, "--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--epochs", "--batch-size", "--lr", "--data", "--run-dir", "--resume",
                 "--per-process-batch", "--sync-bn", "--restart-schedule", "--dry-run"):
        assert flag in text, flag
    assert "GPU" in text and "CPU" in text and "smoke" in text  # per-machine defaults named


def test_unknown_task_and_bad_options_are_refused(capsys):
    with pytest.raises(SystemExit):
        train.main(["faces"])
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="multiples of 32"):
        train.main(["coco", "--input-size", "100x128", "--dry-run"])
    with pytest.raises(SystemExit, match="positive"):
        train.main(["hands", "--lr", "-1", "--dry-run"])


def test_dry_run_applies_the_options(capsys, monkeypatch):
    monkeypatch.setenv("HANDPOSE_SMOKE", "1")
    assert train.main(["coco", "--epochs", "3", "--batch-size", "12", "--lr", "0.01",
                       "--input-size", "96x128", "--dry-run"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out.split("RESULT ", 1)[1])
    assert (result["epochs"], result["global_batch"], result["lr"]) == (3, 12, 0.01)
    assert "input_size=96x128" in out


def test_batch_plan_splits_the_global_batch_or_scales_the_rate():
    plan = train.batch_plan(32, 1e-3, 4, per_process=False)
    assert (plan["global_batch"], plan["per_process_batch"], plan["lr"]) == (32, 8, 1e-3)
    plan = train.batch_plan(32, 1e-3, 4, per_process=True)
    assert (plan["global_batch"], plan["per_process_batch"]) == (128, 32)
    assert plan["lr"] == pytest.approx(4e-3) and "linear scaling" in plan["rule"]
    with pytest.raises(SystemExit, match="does not split evenly"):
        train.batch_plan(30, 1e-3, 4, per_process=False)


def test_each_process_trains_on_its_own_shard_of_a_whole_cache(monkeypatch):
    n = 22
    cache = ImageCache(images=np.zeros((n, 8, 8, 3), np.uint8),
                       keypoints=np.zeros((n, 21, 2), np.float32),
                       visible=np.ones((n, 21), bool), orig_size=np.full((n, 2), 8.0),
                       record_index=np.arange(n), size=8)
    shards = []
    for rank in range(2):  # as under torchrun with 2 processes
        monkeypatch.setattr(env, "distributed", lambda r=rank: env.Distributed(rank=r, world_size=2))
        loader = cached_loader(cache, batch_size=4, shuffle=True, seed=3)
        loader.sampler.sampler.set_epoch(1)
        shards.append([int(i) for batch in loader for i in batch["index"]])
    assert len(shards[0]) == len(shards[1]) == 11  # equal shares: no process waits for another
    assert set(shards[0]) | set(shards[1]) == set(range(n))
    assert not set(shards[0]) & set(shards[1])
    loader.sampler.sampler.set_epoch(2)  # a new epoch, a new order
    assert [int(i) for b in loader for i in b["index"]] != shards[1]


# --------------------------------------------------------------------------------------------
# Smoke runs: one process and two (torchrun, gloo)


def _assert_trained(result: dict, world_size: int, keys: tuple[str, ...]) -> None:
    assert result["world_size"] == world_size
    assert result["epochs_trained_now"] == result["epochs"] == 1
    assert math.isfinite(result["final_train_loss"]) and result["final_train_loss"] > 0
    for key in keys:
        value = result["metrics"][key]
        assert value is None or 0.0 <= value <= 1.0, (key, value)
    run = Path(result["run_dir"])
    assert (run / "last.pth").is_file() and (run / "best.pth").is_file()
    ckpt = torch.load(run / "last.pth", weights_only=True)
    assert ckpt["config"]["world_size"] == world_size
    assert not any(k.startswith(("module.", "_orig_mod.")) for k in ckpt["model"])  # plain model


MEMORY = re.compile(r"images in memory: rank (\d+) holds (\d+) images, ([\d.]+) MB \(train "
                    r"shard\) \+ ([\d.]+) MB \(validation\)")


def test_hands_trains_in_smoke_mode_each_of_two_processes_caching_half(tmp_path):
    """The same data in one process and in two: both train, evaluate and save. Each of the two
    holds about half the training images (its shard, the shorter one padded), and only rank 0,
    which evaluates, the validation images; every process says what it holds."""
    held = {}
    for processes in (1, 2):
        result, out = run_cli(["hands", "--run-dir", str(tmp_path / f"run{processes}"),
                               "--epochs", "1"], tmp_path / "data", processes)
        _assert_trained(result, processes, ("PCK@0.05 (image size, all joints)",))
        assert result["per_process_batch"] * processes == result["global_batch"] == 8
        assert out.count("[001/001]") == 1  # rank 0 alone logs
        assert "no DistributedSampler" not in out
        held[processes] = {int(rank): (int(n), float(train_mb), float(val_mb))
                           for rank, n, train_mb, val_mb in MEMORY.findall(out)}
    assert sorted(held[1]) == [0] and sorted(held[2]) == [0, 1], held
    n_one, train_one, val_one = held[1][0]
    per_image = (train_one + val_one) / n_one
    assert n_one <= held[2][0][0] + held[2][1][0] <= n_one + 1  # padded by one image at most
    for rank, (_, train_mb, val_mb) in held[2].items():
        assert abs(train_mb - train_one / 2) <= 2 * per_image, held
        assert val_mb == (val_one if rank == 0 else 0.0), held


def test_restart_schedule_on_the_command_line(tmp_path):
    """--restart-schedule reaches the engine: a resume that adds epochs to a finished cosine
    starts them at the base rate, and the settings check lets the flag through."""
    args = ["hands", "--run-dir", str(tmp_path / "run"), "--warmup-epochs", "0", "--lr", "0.002"]
    run_cli([*args, "--epochs", "2"], tmp_path / "data")
    _, out = run_cli([*args, "--epochs", "4", "--restart-schedule"], tmp_path / "data")
    assert "epochs 3-4 restart the cosine: lr 2.00e-03" in out
    history = torch.load(tmp_path / "run" / "last.pth", weights_only=True)["history"]
    assert history[2]["lr"] == pytest.approx(0.002) and 0 < history[3]["lr"] < 0.002


@pytest.mark.parametrize("processes", [1, 2])
def test_coco_trains_in_smoke_mode(processes, tmp_path):
    result, out = run_cli(["coco", "--run-dir", str(tmp_path / "run"), "--epochs", "1"],
                          tmp_path / "data", processes)
    _assert_trained(result, processes, ("AP", "AP50", "AR"))
    assert result["metrics"]["decode"] == "quarter + flip test"
    assert out.count("[001/001]") == 1


def test_a_two_process_checkpoint_resumes_in_one_process(tmp_path):
    run = tmp_path / "run"
    first, _ = run_cli(["hands", "--run-dir", str(run), "--epochs", "1"], tmp_path / "data", 2)
    saved = torch.load(run / "last.pth", weights_only=True)["model"]
    second, out = run_cli(["hands", "--run-dir", str(run), "--epochs", "2"], tmp_path / "data")
    assert (second["resumed_from_epoch"], second["resumed_world_size"]) == (1, 2)
    assert (second["start_epoch"], second["epochs_done"], second["epochs_trained_now"]) == (2, 2, 1)
    assert "saved by 2 process(es), resumed by 1" in out
    history = torch.load(run / "last.pth", weights_only=True)["history"]
    assert [row["epoch"] for row in history] == [1, 2]
    assert history[0]["train_loss"] == pytest.approx(first["final_train_loss"])
    resumed = torch.load(run / "last.pth", weights_only=True)["model"]
    assert resumed.keys() == saved.keys()
    assert any(not torch.equal(resumed[k], saved[k]) for k in saved)  # it trained on


def test_the_plan_says_batchnorm_is_per_process():
    one, two = train.batch_plan(8, 1e-3, 1, False)["rule"], train.batch_plan(8, 1e-3, 2, False)["rule"]
    assert "BatchNorm" not in one
    assert "BatchNorm" in two and "own 4 image(s)" in two and "--sync-bn" in two


def test_sync_bn_where_it_cannot_run_is_refused(monkeypatch):
    monkeypatch.setenv("HANDPOSE_SMOKE", "1")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(SystemExit, match="--sync-bn needs several processes on CUDA"):
        train.main(["hands", "--sync-bn", "--device", "cpu", "--dry-run"])


def test_zero_epochs_without_a_finished_run_is_an_error(tmp_path):
    environ = {**os.environ, "HANDPOSE_SMOKE": "1", "HANDPOSE_DATA": str(tmp_path / "data"),
               "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-m", "handpose_utils.train", "hands", "--epochs", "0",
                           "--run-dir", str(tmp_path / "run")], cwd=REPO, env=environ,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "nothing to evaluate" in proc.stdout and "RESULT" not in proc.stdout


def test_an_unwritable_run_folder_is_named_before_training(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    environ = {**os.environ, "HANDPOSE_SMOKE": "1", "HANDPOSE_DATA": str(tmp_path / "data"),
               "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-m", "handpose_utils.train", "hands",
                           "--run-dir", str(blocker / "run")], cwd=REPO, env=environ,
                          capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-2000:]
    assert "could not write" in proc.stdout and str(blocker / "run") in proc.stdout
    assert "Traceback" not in out and "[001/" not in out  # refused before the first epoch
