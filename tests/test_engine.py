"""The training engine: fit, exact resume, NaN handling, checkpoints, logging."""

from __future__ import annotations

import math
import random
import re
import shutil

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from handpose_utils import data as D
from handpose_utils import engine as E
from handpose_utils.metrics import KeypointMeter
from handpose_utils.plots.history import plot_history


class Tiny(nn.Module):
    """Conv + BN + dropout + linear: every kind of state a resume must restore."""

    def __init__(self, outputs=42):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.BatchNorm2d(4), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2),
                                 nn.Linear(4, outputs))

    def forward(self, x):
        return self.net(x)


def fit_with(model, train_loader, val_loader=None, *, loss_fn, prepare_batch=None, metrics=None,
             optimizer=None, callbacks=(), config=None, **fields):
    """``E.fit`` with the :class:`TrainConfig` fields as keywords (``config`` = settings), so the
    tests below read like the runs they make."""
    if val_loader is None:
        fields.setdefault("best_metric", "train_loss")
    cfg = E.TrainConfig(**fields, settings=config or {})
    return E.fit(model, train_loader, val_loader, cfg, loss_fn=loss_fn,
                 prepare_batch=prepare_batch, metrics=metrics, optimizer=optimizer,
                 callbacks=callbacks)



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
    hist = fit_with(model_and_seed(), train, val, epochs=3, checkpoint_dir=tmp_path, log=lines.append,
                 **kw)
    assert len(hist) == 3 and [r["epoch"] for r in hist] == [1, 2, 3]
    pattern = (r"\[00\d/003\] train=\d\.\d{4} \| val=\d\.\d{4} \| "
               r"PCK@0\.05 \(image size\)=\d+\.\d% "
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

    hist = fit_with(model_and_seed(), loader, loader, epochs=5, loss_fn=nn.MSELoss(),
                 metrics=fake_metric, best_metric="val_score", mode="max", checkpoint_dir=tmp_path,
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
    full = fit_with(full_model, train, val, epochs=4, checkpoint_dir=tmp_path / "a", log=None, **kw)

    def crash_after_two(epoch, history):
        if epoch == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        fit_with(model_and_seed(), train, val, epochs=4, checkpoint_dir=tmp_path / "b", log=None,
              callbacks=[crash_after_two], **kw)
    torch.manual_seed(123)  # a fresh session: different RNG, different initial weights
    resumed_model = model_and_seed(seed=99)
    logs = []
    resumed = fit_with(resumed_model, train, val, epochs=4, checkpoint_dir=tmp_path / "b",
                    resume=True, log=logs.append, **kw)
    assert any("resumed" in s and "2 epoch" in s for s in logs)
    assert without_time(resumed) == without_time(full)
    for key, value in full_model.state_dict().items():
        assert torch.equal(value, resumed_model.state_dict()[key]), key
    # resuming a finished run does nothing
    again = fit_with(model_and_seed(), train, val, epochs=4, checkpoint_dir=tmp_path / "b",
                  resume=True, log=None, **kw)
    assert len(again) == 4


def test_resume_refuses_a_checkpoint_from_other_settings(tmp_path):
    """Another input size (or lr, dataset...) must not silently continue the old run; a longer
    plan (epochs) may."""
    train, val, kw = keypoint_setup()
    fit_with(model_and_seed(), train, val, epochs=1, checkpoint_dir=tmp_path, log=None,
          config={"input_size": 16}, **kw)
    with pytest.raises(E.CheckpointError, match=r"input_size: 16 -> 32.*resume=False"):
        fit_with(model_and_seed(), train, val, epochs=1, checkpoint_dir=tmp_path, resume=True,
              log=None, config={"input_size": 32}, **kw)
    history = fit_with(model_and_seed(), train, val, epochs=2, checkpoint_dir=tmp_path, resume=True,
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
        fit_with(model_and_seed(), loader, epochs=3, loss_fn=loss_fn, device="cpu",
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
    hist = fit_with(model_and_seed(), loader, epochs=4, warmup_epochs=2, lr=1e-3,
                 checkpoint_dir=tmp_path / "local", drive_dir=tmp_path / "drive", **kw)
    lrs = hist.column("lr")
    assert lrs[0] == pytest.approx(1e-3 / 3) and lrs[1] == pytest.approx(2e-3 / 3)  # ramp
    assert lrs[2] == pytest.approx(1e-3) and lrs[3] == pytest.approx(0.5e-3)  # cosine over 2
    assert sorted(p.name for p in (tmp_path / "drive").iterdir()) == ["best.pth", "last.pth"]
    # a new runtime lost the local folder: resume falls back to the copy on Drive
    logs = []
    more = fit_with(model_and_seed(), loader, epochs=5, warmup_epochs=2, lr=1e-3, resume=True,
                 checkpoint_dir=tmp_path / "new_local", drive_dir=tmp_path / "drive",
                 **{**kw, "log": logs.append})
    assert len(more) == 5 and any("resumed" in s for s in logs)
    # one more epoch continues the cosine downwards (the old 2-epoch cosine would give 0)
    assert more.column("lr")[:4] == pytest.approx(lrs)
    assert 0 < more.column("lr")[4] < lrs[3]


def test_use_drive_copies_every_run_under_runs_and_a_new_runtime_resumes_from_drive(
        tmp_path, monkeypatch):
    """With ``use_drive`` (HANDPOSE_DRIVE_RUNS), fit copies the checkpoints of a run folder
    under runs_dir() to the same place on Drive, with no drive_dir given, and a new runtime
    whose local runs folder is gone resumes from there."""
    monkeypatch.setenv("HANDPOSE_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("HANDPOSE_DRIVE_RUNS", str(tmp_path / "drive" / "runs"))
    loader, logs = tiny_loader(), []
    fit_with(model_and_seed(), loader, loader, epochs=2, checkpoint_dir=tmp_path / "runs" / "03",
             log=None, **QUIET)
    drive = tmp_path / "drive" / "runs" / "03"
    assert sorted(p.name for p in drive.iterdir()) == ["best.pth", "last.pth"]
    shutil.rmtree(tmp_path / "runs")
    more = fit_with(model_and_seed(), loader, loader, epochs=3, resume=True,
                    checkpoint_dir=tmp_path / "runs" / "03", log=logs.append, **QUIET)
    assert len(more) == 3 and any("resumed" in s and "2 epoch(s) done" in s for s in logs), logs


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
    fig = plot_history(hist)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 2 and len(fig.axes[1].lines) == 1


def tiny_loader(n=8, batch_size=4):
    """Two batches per epoch of random images and targets."""
    g = torch.Generator().manual_seed(0)
    return DataLoader(TensorDataset(torch.randn(n, 3, 8, 8, generator=g),
                                    torch.randn(n, 42, generator=g)), batch_size=batch_size)


QUIET = dict(loss_fn=nn.MSELoss(), device="cpu", progress=False, live_plot=False)


def model_tensors(state):
    return {k: v for k, v in state.items() if v.is_floating_point()}


def assert_same_tensors(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_starting_over_moves_the_previous_run_aside(tmp_path):
    """resume=False never overwrites a finished run: its best.pth and last.pth (local and on
    Drive) move to a previous-<time> folder that the log names."""
    loader = tiny_loader()
    run, drive = tmp_path / "run", tmp_path / "drive"
    fit_with(model_and_seed(), loader, loader, epochs=2, checkpoint_dir=run, drive_dir=drive,
          log=None, **QUIET)
    first = {name: E.load_checkpoint(run / name)["model"] for name in ("best.pth", "last.pth")}
    logs = []
    fit_with(model_and_seed(1), loader, loader, epochs=1, checkpoint_dir=run, drive_dir=drive,
          resume=False, log=logs.append, **QUIET)
    text = "\n".join(logs)
    for folder in (run, drive):
        previous = [p for p in folder.iterdir() if p.is_dir()]
        assert len(previous) == 1 and previous[0].name.startswith("previous-"), previous
        assert str(previous[0]) in text
        assert sorted(p.name for p in previous[0].iterdir()) == ["best.pth", "last.pth"]
        for name, state in first.items():
            assert_same_tensors(E.load_checkpoint(previous[0] / name)["model"], state)
        assert E.load_checkpoint(folder / "last.pth")["epoch"] == 1  # the new run
    # a third start (within the same second) gets its own folder
    fit_with(model_and_seed(2), loader, loader, epochs=1, checkpoint_dir=run, resume=False,
          log=None, **QUIET)
    assert len([p for p in run.iterdir() if p.name.startswith("previous-")]) == 2


class PoisonAt:
    """An optimizer step hook that fills one weight with NaN after step ``at`` (1-based): the
    loss of that step was finite, the weights after it are not."""

    def __init__(self, model, at):
        self.model, self.at, self.steps = model, at, 0

    def __call__(self, optimizer, args, kwargs):
        self.steps += 1
        if self.steps == self.at:
            with torch.no_grad():
                self.model.net[6].weight.fill_(float("nan"))


def test_weights_turning_nan_stop_the_run_and_keep_the_last_good_checkpoint(tmp_path):
    loader = tiny_loader()  # 2 steps per epoch
    model = model_and_seed()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    optimizer.register_step_post_hook(PoisonAt(model, at=4))  # the last step of epoch 2
    after_epoch_1 = {}

    def snapshot(epoch, history):
        if epoch == 1:
            after_epoch_1.update({k: v.clone() for k, v in model.state_dict().items()})

    with pytest.raises(E.NonFiniteLossError, match=r"weights .*epoch 2, batch 2/2") as err:
        fit_with(model, loader, loader, epochs=3, optimizer=optimizer, checkpoint_dir=tmp_path,
              callbacks=[snapshot], log=None, **QUIET)
    assert str(tmp_path / "last.pth") in str(err.value) and "epoch 1" in str(err.value)
    for name in ("best.pth", "last.pth"):
        ckpt = E.load_checkpoint(tmp_path / name)
        assert ckpt["epoch"] == 1 and len(ckpt["history"]) == 1
        assert_same_tensors(ckpt["model"], after_epoch_1)
    assert_same_tensors(model.state_dict(), after_epoch_1)  # the model in memory is usable
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pth", "last.pth"]


def test_nan_weights_without_checkpoints_say_the_model_is_not_restored():
    loader = tiny_loader()
    model = model_and_seed()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    optimizer.register_step_post_hook(PoisonAt(model, at=1))
    with pytest.raises(E.NonFiniteLossError, match=r"epoch 1, batch 1/2.*not restored"):
        fit_with(model, loader, epochs=2, optimizer=optimizer, log=None, **QUIET)


def test_nan_validation_metric_is_never_checkpointed(tmp_path):
    loader = tiny_loader()
    values = iter([0.5, math.nan, 0.9])

    def fake_metric(outputs, targets, extras):
        return {"score": next(values)}

    model = model_and_seed()
    with pytest.raises(E.NonFiniteLossError, match=r"val_score is nan at epoch 2"):
        fit_with(model, loader, loader, epochs=3, metrics=fake_metric, best_metric="val_score", mode="max",
              checkpoint_dir=tmp_path, log=None, **QUIET)
    for name in ("best.pth", "last.pth"):
        assert E.load_checkpoint(tmp_path / name)["epoch"] == 1
    assert_same_tensors(model.state_dict(), E.load_checkpoint(tmp_path / "last.pth")["model"])


def test_save_checkpoint_refuses_non_finite_weights(tmp_path):
    model = model_and_seed()
    path = E.save_checkpoint(tmp_path / "last.pth", model)
    before = path.read_bytes()
    with torch.no_grad():
        model.net[1].running_var[0] = float("inf")  # a floating buffer counts too
    with pytest.raises(E.CheckpointError, match=r"last\.pth.*net\.1\.running_var"):
        E.save_checkpoint(path, model)
    assert path.read_bytes() == before


def test_more_epochs_on_resume_continue_the_cosine_downwards(tmp_path):
    """2 epochs, then resumed to 5: the learning rate keeps falling from where it was, and is
    never 0 (the old 2-epoch cosine would give 1e-2, 5e-3, 0, 5e-3, 1e-2)."""
    loader = tiny_loader()
    kw = dict(lr=1e-2, log=None, **QUIET)
    fit_with(model_and_seed(), loader, epochs=2, checkpoint_dir=tmp_path / "a", **kw)
    lrs = fit_with(model_and_seed(), loader, epochs=5, checkpoint_dir=tmp_path / "a", resume=True,
                **kw).column("lr")
    assert lrs[:2] == pytest.approx([1e-2, 5e-3])
    assert all(lr > 0 for lr in lrs), lrs
    assert all(b < a for a, b in zip(lrs, lrs[1:])), lrs
    # the continued schedule survives another interruption
    fit_with(model_and_seed(), loader, epochs=2, checkpoint_dir=tmp_path / "b", **kw)

    def crash_after_three(epoch, history):
        if epoch == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        fit_with(model_and_seed(), loader, epochs=5, checkpoint_dir=tmp_path / "b", resume=True,
              callbacks=[crash_after_three], **kw)
    again = fit_with(model_and_seed(), loader, epochs=5, checkpoint_dir=tmp_path / "b",
                  resume=True, **kw).column("lr")
    assert again == pytest.approx(lrs)


def test_more_epochs_during_warmup_follow_the_new_plan(tmp_path):
    """Resumed while still warming up, the run follows the fresh plan for the new length."""
    loader = tiny_loader()
    kw = dict(lr=1e-2, warmup_epochs=2, log=None, **QUIET)

    def crash_after_one(epoch, history):
        raise Interrupt

    with pytest.raises(Interrupt):
        fit_with(model_and_seed(), loader, epochs=3, checkpoint_dir=tmp_path / "a",
              callbacks=[crash_after_one], **kw)
    resumed = fit_with(model_and_seed(), loader, epochs=6, checkpoint_dir=tmp_path / "a",
                    resume=True, **kw).column("lr")
    fresh = fit_with(model_and_seed(), loader, epochs=6, **kw).column("lr")
    assert resumed == pytest.approx(fresh)


def test_added_epochs_name_their_rates_and_can_restart_the_cosine(tmp_path):
    """A finished 4-epoch cosine resumed to 12: by default the added epochs continue its low
    tail, and the log says so with the rates before they train; restart_schedule runs a new
    cosine from the base rate down to ~0 instead, and a run interrupted in that restarted
    segment resumes it (not the original schedule) when the same command runs again."""
    import shutil

    loader, base = tiny_loader(), 1e-2
    kw = dict(lr=base, **QUIET)
    fit_with(model_and_seed(), loader, epochs=4, checkpoint_dir=tmp_path / "a", log=None, **kw)
    for copy in ("b", "c"):  # the same finished run, to be resumed three ways
        shutil.copytree(tmp_path / "a", tmp_path / copy)
    logs = []
    tail = fit_with(model_and_seed(), loader, epochs=12, checkpoint_dir=tmp_path / "a",
                    resume=True, log=logs.append, **kw).column("lr")
    said = [line for line in logs if "epochs 5-12 continue the cosine" in line]
    fifth = next(i for i, line in enumerate(logs) if line.startswith("[005/012]"))
    assert len(said) == 1 and logs.index(said[0]) < fifth  # said before the epochs train
    assert f"lr {tail[4]:.2e} -> {tail[11]:.2e} ({tail[4] / base:.1%} of the base rate" in said[0]
    assert "--restart-schedule" in said[0] and tail[4] < tail[3] < 0.2 * base

    logs = []
    restarted = fit_with(model_and_seed(), loader, epochs=12, checkpoint_dir=tmp_path / "b",
                         resume=True, restart_schedule=True, log=logs.append, **kw).column("lr")
    assert restarted[:4] == pytest.approx(tail[:4])
    assert restarted[4] == pytest.approx(base)  # the first added epoch: the base rate
    assert all(b < a for a, b in zip(restarted[4:], restarted[5:])), restarted
    assert 0 < restarted[11] < 0.05 * base  # ... down to about 0 at the end
    assert any(f"epochs 5-12 restart the cosine: lr {base:.2e} -> {restarted[11]:.2e}" in line
               for line in logs), logs

    def crash_after_seven(epoch, history):
        if epoch == 7:
            raise Interrupt

    with pytest.raises(Interrupt):
        fit_with(model_and_seed(), loader, epochs=12, checkpoint_dir=tmp_path / "c", resume=True,
                 restart_schedule=True, log=None, callbacks=[crash_after_seven], **kw)
    again = fit_with(model_and_seed(), loader, epochs=12, checkpoint_dir=tmp_path / "c",
                     resume=True, restart_schedule=True, log=None, **kw).column("lr")
    assert again == pytest.approx(restarted)


def test_stale_temporaries_of_killed_saves_are_removed(tmp_path):
    """Only the course's own temporaries, only when old and not written by a live process."""
    import os
    import subprocess
    import sys
    import time

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run, drive = tmp_path / "run", tmp_path / "drive"
    stale = [run / f".last.pth.{dead.pid}.k2j4h5g6.tmp", run / ".best.pth.abcd_123.tmp",
             drive / f".last.pth.{dead.pid}.tmp", drive / ".best.pth.tmp"]
    kept = [run / f".last.pth.{os.getpid()}.q1w2e3r4.tmp",  # a live process's save
            run / "notes.tmp", run / ".other.tmp", drive / "last.pth.txt"]
    recent = run / f".best.pth.{dead.pid}.zzzzzzzz.tmp"  # too recent to be sure
    for path in [*stale, *kept, recent]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 10)
    old = time.time() - 3600
    for path in [*stale, *kept]:
        os.utime(path, (old, old))
    logs = []
    loader = tiny_loader()
    fit_with(model_and_seed(), loader, epochs=1, checkpoint_dir=run, drive_dir=drive,
          log=logs.append, **QUIET)
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in [*kept, recent])
    assert any("stale" in s and str(run) in s for s in logs), logs


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"),
                                   RuntimeError("[enforce fail at inline_container.cc:664] . "
                                                "unexpected pos 4480 vs 4374")])
def test_a_failed_save_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch, error):
    model = model_and_seed()
    path = E.save_checkpoint(tmp_path / "last.pth", model)
    before = path.read_bytes()

    def full_disk(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise error

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(E.CheckpointError, match=rf"could not write {re.escape(str(path))}: "
                                                 r".*(No space left|unexpected pos).*disk"):
        E.save_checkpoint(path, model)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pth"]


def test_train_config_names_the_direction_of_the_best_metric():
    assert E.TrainConfig().mode == "min" and E.TrainConfig(best_metric="train_loss").mode == "min"
    with pytest.raises(ValueError, match="val_pck.*mode='max' or mode='min'"):
        E.TrainConfig(best_metric="val_pck")  # fit never guesses whether higher is better
    assert E.TrainConfig(best_metric="val_pck", mode="max").mode == "max"
    with pytest.raises(ValueError, match="'best'"):
        E.TrainConfig(mode="best")
    with pytest.raises(ValueError, match="checkpoint_dir"):
        E.TrainConfig(resume=True)
    cfg = E.TrainConfig(epochs=3)
    assert cfg.replace(epochs=5).epochs == 5 and cfg.epochs == 3


def test_fit_takes_a_config_and_at_most_ten_parameters():
    import inspect

    params = inspect.signature(E.fit).parameters
    assert len(params) <= 10 and list(params)[:4] == ["model", "train_loader", "val_loader",
                                                      "config"]
    loader = DataLoader(TensorDataset(torch.zeros(4, 3, 8, 8), torch.zeros(4, 42)), batch_size=2)
    with pytest.raises(TypeError, match="TrainConfig"):
        E.fit(Tiny(), loader, loader, {"epochs": 1}, loss_fn=nn.MSELoss())
    with pytest.raises(ValueError, match="best_metric='train_loss'"):
        E.fit(Tiny(), loader, None, E.TrainConfig(epochs=1), loss_fn=nn.MSELoss())


def test_an_undefined_validation_metric_is_checkpointed_only_with_a_warning(tmp_path):
    """A NaN in a metric that does not choose the best epoch (no visible joint to score) is
    written to the history, as it is, but the log names it."""
    loader = tiny_loader()

    def fake_metric(outputs, targets, extras):
        return {"score": 0.5, "pck": math.nan}

    lines = []
    fit_with(model_and_seed(), loader, loader, epochs=1, metrics=fake_metric,
             best_metric="val_score", mode="max", checkpoint_dir=tmp_path, log=lines.append,
             **QUIET)
    assert math.isnan(E.load_checkpoint(tmp_path / "last.pth")["history"][0]["val_pck"])
    warned = [line for line in lines if "warning" in line and "val_pck" in line]
    assert warned and "val_score" not in warned[0], lines
