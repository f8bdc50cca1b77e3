"""The environment module: smoke mode, AMP choice, device, seeding, data folder."""

import torch

from handpose_utils import env


def test_smoke_flag(monkeypatch):
    monkeypatch.setenv(env.SMOKE_VAR, "1")
    assert env.is_smoke() and env.smoke_or(100, 3) == 3 and env.default_num_workers() == 0
    monkeypatch.setenv(env.SMOKE_VAR, "0")
    assert not env.is_smoke() and env.smoke_or(100, 3) == 100
    monkeypatch.delenv(env.SMOKE_VAR)
    assert not env.is_smoke()


def test_amp_off_on_cpu():
    amp = env.amp_settings("cpu")
    assert amp.dtype is None and not amp.use_scaler and not amp.enabled


def test_amp_fp16_with_scaler_on_t4_and_bf16_on_ampere(monkeypatch):
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: (7, 5))  # T4
    amp = env.amp_settings(torch.device("cuda"))
    assert amp.dtype == torch.float16 and amp.use_scaler
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: (8, 0))  # A100
    amp = env.amp_settings(torch.device("cuda"))
    assert amp.dtype == torch.bfloat16 and not amp.use_scaler


def test_device_override(monkeypatch):
    monkeypatch.setenv(env.DEVICE_VAR, "cpu")
    assert env.pick_device() == torch.device("cpu")


def test_seed_everything_repeats():
    env.seed_everything(5)
    a = torch.rand(3)
    env.seed_everything(5)
    assert torch.equal(a, torch.rand(3))


def test_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv(env.DATA_VAR, str(tmp_path))
    monkeypatch.delenv(env.SMOKE_VAR, raising=False)
    assert env.data_dir() == tmp_path
    monkeypatch.setenv(env.SMOKE_VAR, "1")
    assert env.data_dir() == tmp_path / "smoke"  # smoke runs never overwrite real data


def test_in_colab_false_here():
    assert env.in_colab() is False
