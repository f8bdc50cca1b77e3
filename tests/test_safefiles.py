"""Safe files: whole files under concurrent writers, one rule for leftovers, a lock that
serialises, and checkpoints that use them (a run folder checked before training, a resume that
honours a new best metric)."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
import time

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from handpose_utils import engine as E
from handpose_utils import safefiles as S


def _write_many(path, tag, n):
    for i in range(n):
        S.write_json(path, {"writer": tag, "i": i, "pad": "x" * 20_000})


def _append_locked(path, tag, n):
    for _ in range(n):
        with S.file_lock(path):
            with open(path, "a") as f:  # a read-modify-write would interleave without the lock
                f.write(f"{tag}-start\n")
                f.flush()
                time.sleep(0.002)
                f.write(f"{tag}-end\n")


def _in_two_processes(target, path, n) -> list[int]:
    """Run ``target(path, tag, n)`` in two fresh processes at once; their exit codes."""
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=target, args=(path, tag, n)) for tag in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    return [p.exitcode for p in procs]


def test_two_processes_writing_one_file_both_succeed_and_it_stays_whole(tmp_path):
    path = tmp_path / "shared.json"
    assert _in_two_processes(_write_many, path, 40) == [0, 0]
    assert json.loads(path.read_text())["i"] == 39
    assert [p.name for p in tmp_path.iterdir()] == ["shared.json"]  # no temporaries left


def test_the_lock_serialises_writers(tmp_path):
    path = tmp_path / "log.txt"
    assert _in_two_processes(_append_locked, path, 25) == [0, 0]
    lines = path.read_text().split()
    assert len(lines) == 100
    for start, end in zip(lines[::2], lines[1::2]):
        assert start.endswith("-start") and end == start.replace("start", "end")


def test_a_failed_write_names_the_file_and_leaves_nothing(tmp_path):
    (tmp_path / "target.json").write_text("old")

    def boom(f):
        f.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(S.WriteError, match=r"target\.json.*full"):
        S.atomic_write(tmp_path / "target.json", boom)
    assert (tmp_path / "target.json").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["target.json"]


def test_one_stale_rule(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = S._host()
    ours_dead = tmp_path / f".a.bin.{dead.pid}-{host}.abcd1234.tmp"  # at once, however new
    ours_alive = tmp_path / f".a.bin.{os.getpid()}-{host}.abcd1234.tmp"  # never, however old
    foreign_old = tmp_path / f".a.bin.{dead.pid}-00000000.abcd1234.tmp"
    foreign_new = tmp_path / f".b.bin.{dead.pid}-00000000.abcd1234.tmp"
    unrelated = tmp_path / "notes.tmp"
    for p in (ours_dead, ours_alive, foreign_old, foreign_new, unrelated):
        p.write_bytes(b"x")
    old = time.time() - 2 * S.STALE_S
    for p in (ours_alive, foreign_old, unrelated):
        os.utime(p, (old, old))
    removed = S.remove_stale_temporaries(tmp_path, log=None)
    assert sorted(removed) == sorted([ours_dead, foreign_old])
    assert ours_alive.exists() and foreign_new.exists() and unrelated.exists()
    # a name filter keeps other files' temporaries
    ours_dead.write_bytes(b"x")
    assert S.remove_stale_temporaries(tmp_path, name="other.bin", log=None) == []


def _loader():
    g = torch.Generator().manual_seed(0)
    return DataLoader(TensorDataset(torch.randn(8, 3, 8, 8, generator=g),
                                    torch.randn(8, 4, generator=g)), batch_size=4)


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 8 * 8, 4)

    def forward(self, x):
        return self.fc(x.flatten(1))


QUIET = dict(device="cpu", progress=False, live_plot=False)


def test_an_unwritable_run_folder_fails_before_the_first_batch(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    batches = []

    def prepare(batch, device, train):
        batches.append(train)
        return batch[0], batch[1], {}

    cfg = E.TrainConfig(epochs=1, best_metric="train_loss", checkpoint_dir=blocker / "run",
                        log=None, **QUIET)
    with pytest.raises(E.CheckpointError, match=r"a-file/run"):
        E.fit(_Net(), _loader(), config=cfg, loss_fn=nn.MSELoss(), prepare_batch=prepare)
    assert batches == []


def test_a_resume_with_another_best_metric_recomputes_the_best(tmp_path):
    loader, logs = _loader(), []
    torch.manual_seed(0)
    model = _Net()
    base = dict(checkpoint_dir=tmp_path, log=logs.append, **QUIET)
    E.fit(model, loader, loader, E.TrainConfig(epochs=2, **base), loss_fn=nn.MSELoss())
    history = E.fit(model, loader, loader,
                    E.TrainConfig(epochs=3, resume=True, best_metric="train_loss", **base),
                    loss_fn=nn.MSELoss())
    best = E.load_checkpoint(tmp_path / "last.pth")["best"]
    assert best["metric"] == "train_loss" and best["mode"] == "min"
    rows = [r for r in history]
    assert best["value"] == min(r["train_loss"] for r in rows)
    assert any("recomputed" in line for line in logs), logs
