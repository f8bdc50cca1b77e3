"""The training engine: fit, exact resume, NaN handling, checkpoints, logging."""

from __future__ import annotations

import math
import random
import re

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from handpose_utils import data as D
from handpose_utils import engine as E
from handpose_utils.metrics import KeypointMeter


class Tiny(nn.Module):
    """Conv + BN + dropout + linear: every kind of state a resume must restore."""

    def __init__(self, outputs=42):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.BatchNorm2d(4), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2),
                                 nn.Linear(4, outputs))

    def forward(self, x):
        return self.net(x)


def keypoint_setup(n=24, size=16):
    """A fake image cache with the course pipeline: shuffled cached loader, device augmentation,
    L1 on normalised coordinates, KeypointMeter."""
    rng = np.random.default_rng(0)
    cache = D.ImageCache(
        images=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
        keypoints=rng.uniform(2, size - 3, (n, 21, 2)).astype(np.float32),
        visible=np.ones((n, 21), bool),
        orig_size=np.full((n, 2), 224.0, np.float32),
        record_index=np.arange(n),
        size=size,
    )
    train = D.cached_loader(cache, batch_size=8, shuffle=True, drop_last=True, pin_memory=False)
    val = D.cached_loader(cache, batch_size=8, pin_memory=False)
    kwargs = dict(loss_fn=nn.L1Loss(), prepare_batch=D.PrepareBatch(D.DeviceAugment()),
                  metrics=KeypointMeter(), device="cpu", progress=False, live_plot=False)
    return train, val, kwargs


def model_and_seed(seed=0):
    torch.manual_seed(seed)
    return Tiny()


def without_time(history):
    return [{k: v for k, v in row.items() if k not in ("time_s", "train_s")} for row in history]


def test_fit_logs_the_reference_line_and_saves_checkpoints(tmp_path):
    train, val, kw = keypoint_setup()
    lines = []
    hist = E.fit(model_and_seed(), train, val, epochs=3, checkpoint_dir=tmp_path, log=lines.append,
                 **kw)
    assert len(hist) == 3 and [r["epoch"] for r in hist] == [1, 2, 3]
    pattern = (r"\[00\d/003\] train=\d\.\d{4} \| val=\d\.\d{4} \| PCK@0\.05=\d+\.\d% "
               r"\| lr=\d\.\d\de-0\d")
    epoch_lines = [s for s in lines if s.startswith("[")]
    assert len(epoch_lines) == 3 and all(re.fullmatch(pattern, s) for s in epoch_lines), lines
    for key in ("train_loss", "val_loss", "val_pck", "val_pck@0.05", "val_auc", "val_epe", "lr"):
        assert key in hist[0]
    # cosine over 3 epochs, stepped per epoch: 3e-4, 2.25e-4, 0.75e-4
    assert [r["lr"] for r in hist] == pytest.approx([3e-4, 2.25e-4, 0.75e-4])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pth", "last.pth"]  # no temp files
    last = E.load_checkpoint(tmp_path / "last.pth")
    assert last["epoch"] == 3 and without_time(last["history"]) == without_time(hist)
    assert last["config"]["lr"] == 3e-4 and last["config"]["model"] == "Tiny"
    assert {"model", "optimizer", "scheduler", "scaler", "rng", "best"} <= set(last)


def test_best_checkpoint_follows_the_metric(tmp_path):
    loader = DataLoader(TensorDataset(torch.randn(8, 3, 8, 8), torch.randn(8, 42)), batch_size=4)
    values = iter([0.5, 0.9, 0.7, 0.95, 0.1])

    def fake_metric(outputs, targets, extras):
        return {"score": next(values)}

    hist = E.fit(model_and_seed(), loader, loader, epochs=5, loss_fn=nn.MSELoss(),
                 metrics=fake_metric, best_metric="val_score", checkpoint_dir=tmp_path,
                 device="cpu", progress=False, live_plot=False, log=None)
    assert hist.column("val_score") == [0.5, 0.9, 0.7, 0.95, 0.1]
    best = E.load_checkpoint(tmp_path / "best.pth")
    assert best["epoch"] == 4
    assert best["best"] == {"metric": "val_score", "mode": "max", "value": 0.95, "epoch": 4}
    # ... and its weights are epoch 4's, not the last epoch's
    last = E.load_checkpoint(tmp_path / "last.pth")
    assert last["epoch"] == 5
    assert not all(torch.equal(best["model"][k], last["model"][k]) for k in best["model"])
    assert hist.best("val_score")["epoch"] == 4 and hist.best("val_score", "min")["epoch"] == 5


class Interrupt(Exception):
    pass


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    """4 epochs straight vs 2 epochs, a crash, and resume=True: identical weights and history.
    Shuffling, dropout and device augmentation all draw random numbers."""
    train, val, kw = keypoint_setup()
    full_model = model_and_seed()
    full = E.fit(full_model, train, val, epochs=4, checkpoint_dir=tmp_path / "a", log=None, **kw)

    def crash_after_two(epoch, history):
        if epoch == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        E.fit(model_and_seed(), train, val, epochs=4, checkpoint_dir=tmp_path / "b", log=None,
              callbacks=[crash_after_two], **kw)
    torch.manual_seed(123)  # a fresh session: different RNG, different initial weights
    resumed_model = model_and_seed(seed=99)
    logs = []
    resumed = E.fit(resumed_model, train, val, epochs=4, checkpoint_dir=tmp_path / "b",
                    resume=True, log=logs.append, **kw)
    assert any("resumed" in s and "2 epoch" in s for s in logs)
    assert without_time(resumed) == without_time(full)
    for key, value in full_model.state_dict().items():
        assert torch.equal(value, resumed_model.state_dict()[key]), key
    # resuming a finished run does nothing
    again = E.fit(model_and_seed(), train, val, epochs=4, checkpoint_dir=tmp_path / "b",
                  resume=True, log=None, **kw)
    assert len(again) == 4


def test_resume_refuses_a_checkpoint_from_other_settings(tmp_path):
    """Another input size (or lr, dataset...) must not silently continue the old run; a longer
    plan (epochs) may."""
    train, val, kw = keypoint_setup()
    E.fit(model_and_seed(), train, val, epochs=1, checkpoint_dir=tmp_path, log=None,
          config={"input_size": 16}, **kw)
    with pytest.raises(E.CheckpointError, match=r"input_size: 16 -> 32.*resume=False"):
        E.fit(model_and_seed(), train, val, epochs=1, checkpoint_dir=tmp_path, resume=True,
              log=None, config={"input_size": 32}, **kw)
    history = E.fit(model_and_seed(), train, val, epochs=2, checkpoint_dir=tmp_path, resume=True,
                    log=None, config={"input_size": 16}, **kw)
    assert [row["epoch"] for row in history] == [1, 2]


def test_nan_loss_names_epoch_and_batch():
    loader = DataLoader(TensorDataset(torch.randn(16, 3, 8, 8), torch.randn(16, 42)), batch_size=4)
    calls = {"n": 0}

    def loss_fn(outputs, targets):
        calls["n"] += 1
        loss = nn.functional.mse_loss(outputs, targets)
        return loss * float("nan") if calls["n"] == 4 + 3 else loss  # epoch 2, batch 3

    with pytest.raises(E.NonFiniteLossError, match=r"epoch 2, batch 3/4") as err:
        E.fit(model_and_seed(), loader, epochs=3, loss_fn=loss_fn, device="cpu",
              progress=False, live_plot=False, log=None)
    assert "learning rate" in str(err.value)
    # a coarser check interval still reports the exact batch
    model = model_and_seed()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    calls["n"] = 4  # the next call (batch 3) is the NaN one
    with pytest.raises(E.NonFiniteLossError, match=r"epoch 1, batch 3/4"):
        E.train_one_epoch(model, loader, loss_fn=loss_fn, optimizer=opt, device="cpu",
                          check_every=4, progress=False)


def test_checkpoint_atomic_save_and_corruption(tmp_path):
    model = model_and_seed()
    opt = torch.optim.AdamW(model.parameters())
    path = E.save_checkpoint(tmp_path / "ck" / "last.pth", model, opt, epoch=7,
                             history=[{"epoch": 7, "train_loss": 0.5}], config={"name": "x"})
    assert [p.name for p in path.parent.iterdir()] == ["last.pth"]
    ck = E.load_checkpoint(path, model_and_seed(1), torch.optim.AdamW(model.parameters()))
    assert ck["epoch"] == 7 and ck["config"] == {"name": "x"}
    # a run saved without fp16 (empty scaler state) resumes on a GPU that needs a GradScaler
    cpu_run = E.save_checkpoint(tmp_path / "cpu.pth", model,
                                scaler=torch.amp.GradScaler("cpu", enabled=False))
    fp16_scaler = torch.amp.GradScaler("cpu", enabled=True)
    E.load_checkpoint(cpu_run, scaler=fp16_scaler)
    assert fp16_scaler.get_scale() == 65536.0

    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(E.CheckpointError, match="truncated.pth"):
        E.load_checkpoint(truncated, model_and_seed())
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        E.load_checkpoint(tmp_path / "nope.pth")
    with pytest.raises(E.CheckpointError, match="does not fit"):
        E.load_checkpoint(path, Tiny(outputs=63))

    # a failing save leaves the previous file intact and no temporary file behind
    class Unsaveable:
        def state_dict(self):
            raise RuntimeError("disk full")

    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="disk full"):
        E.save_checkpoint(path, model, Unsaveable())
    assert path.read_bytes() == before and [p.name for p in path.parent.iterdir()] == ["last.pth"]


def test_rng_state_round_trip_through_a_weights_only_checkpoint(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.standard_normal()  # leave a cached gaussian in NumPy's state
    path = E.save_checkpoint(tmp_path / "c.pth", model_and_seed())
    want = (random.random(), np.random.random(), torch.rand(3))
    E.load_checkpoint(path, restore_rng=True)
    got = (random.random(), np.random.random(), torch.rand(3))
    assert want[0] == got[0] and want[1] == got[1] and torch.equal(want[2], got[2])


def test_warmup_then_cosine_and_drive_copy(tmp_path):
    loader = DataLoader(TensorDataset(torch.randn(8, 3, 8, 8), torch.randn(8, 42)), batch_size=4)
    kw = dict(loss_fn=nn.MSELoss(), device="cpu", progress=False, live_plot=False, log=None)
    hist = E.fit(model_and_seed(), loader, epochs=4, warmup_epochs=2, lr=1e-3,
                 checkpoint_dir=tmp_path / "local", drive_dir=tmp_path / "drive", **kw)
    lrs = hist.column("lr")
    assert lrs[0] == pytest.approx(1e-3 / 3) and lrs[1] == pytest.approx(2e-3 / 3)  # ramp
    assert lrs[2] == pytest.approx(1e-3) and lrs[3] == pytest.approx(0.5e-3)  # cosine over 2
    assert sorted(p.name for p in (tmp_path / "drive").iterdir()) == ["best.pth", "last.pth"]
    # a new runtime lost the local folder: resume falls back to the copy on Drive
    logs = []
    more = E.fit(model_and_seed(), loader, epochs=5, warmup_epochs=2, lr=1e-3, resume=True,
                 checkpoint_dir=tmp_path / "new_local", drive_dir=tmp_path / "drive",
                 **{**kw, "log": logs.append})
    assert len(more) == 5 and any("resumed" in s for s in logs)


def test_evaluate_predict_and_history_helpers():
    x, y = torch.randn(10, 3, 8, 8), torch.randn(10, 42)
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    model = model_and_seed().eval()
    with torch.no_grad():
        want = model(x)
    out = E.predict(model, loader, device="cpu", progress=False)
    assert out.shape == (10, 42) and torch.allclose(out, want, atol=1e-6)
    res = E.evaluate(model, loader, loss_fn=nn.MSELoss(reduction="mean"), device="cpu",
                     metrics=lambda o, t, e: {"mae": float((o - t).abs().mean())}, progress=False)
    assert res["loss"] == pytest.approx(float(((want - y) ** 2).mean()), rel=1e-5)
    assert res["mae"] == pytest.approx(float((want - y).abs().mean()), rel=1e-5)

    row = {"epoch": 3, "train_loss": 0.04214, "val_loss": 0.03849, "val_pck": 0.7234,
           "lr": 2.988e-4}
    line = E.format_epoch(row, 50, [("pck", "PCK@0.05", "{:.1%}")])
    assert line == "[003/050] train=0.0421 | val=0.0385 | PCK@0.05=72.3% | lr=2.99e-04"
    hist = E.History([row, {**row, "epoch": 4, "val_pck": math.nan}])
    table = hist.table(["epoch", "val_pck"])
    assert table.splitlines()[0].split() == ["epoch", "val_pck"] and "0.7234" in table
    assert hist.best("val_pck")["epoch"] == 3
    fig = E.plot_history(hist)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 2 and len(fig.axes[1].lines) == 1
