"""The environment module: smoke mode, AMP choice, device, seeding, data folder."""

from pathlib import Path

import pytest
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


def test_smoke_flag_accepts_only_documented_values(monkeypatch):
    for value, smoke in [("1", True), ("TRUE", True), (" yes ", True), ("On", True),
                         ("0", False), ("false", False), ("No", False), ("off", False), ("", False)]:
        monkeypatch.setenv(env.SMOKE_VAR, value)
        assert env.is_smoke() is smoke, value
    for value in ["2", "y", "enabled", "smoke"]:
        monkeypatch.setenv(env.SMOKE_VAR, value)
        with pytest.raises(ValueError, match=rf"HANDPOSE_SMOKE='{value}'.*1, true, yes, on.*0"):
            env.is_smoke()


def test_device_names_are_validated(monkeypatch):
    for value in ["gpu", "cuda0", "cuda:x", "tpu"]:
        monkeypatch.setenv(env.DEVICE_VAR, value)
        with pytest.raises(ValueError, match=rf"HANDPOSE_DEVICE='{value}'.*cpu, cuda, cuda:N, mps"):
            env.pick_device()
    monkeypatch.setenv(env.DEVICE_VAR, " CPU ")
    assert env.pick_device() == torch.device("cpu")


def test_an_unavailable_device_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv(env.DEVICE_VAR, "cuda")
    with pytest.raises(RuntimeError, match=r"HANDPOSE_DEVICE='cuda'.*no CUDA GPU"):
        env.pick_device()
    with pytest.raises(RuntimeError, match=r"pick_device\(prefer='cuda:0'\).*no CUDA GPU"):
        env.pick_device("cuda:0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv(env.DEVICE_VAR, "cuda:1")
    with pytest.raises(RuntimeError, match=r"HANDPOSE_DEVICE='cuda:1'.*1 CUDA GPU.*cuda:0"):
        env.pick_device()
    monkeypatch.setenv(env.DEVICE_VAR, "cuda:0")
    assert env.pick_device() == torch.device("cuda", 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setenv(env.DEVICE_VAR, "mps")
    with pytest.raises(RuntimeError, match=r"HANDPOSE_DEVICE='mps'.*not available"):
        env.pick_device()


@pytest.mark.parametrize("var, where", [(env.DATA_VAR, "a-file"), (env.DATA_VAR, "a-file/data"),
                                        (env.RUNS_VAR, "a-file")])
def test_a_folder_variable_naming_a_file_is_refused_by_name(monkeypatch, tmp_path, var, where):
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv(var, str(tmp_path / where))
    with pytest.raises(ValueError, match=rf"{var}=.*a-file is a file, not a folder"):
        env.data_dir() if var == env.DATA_VAR else env.runs_dir()


def test_drive_runs_naming_a_file_is_refused_not_ignored(monkeypatch, tmp_path):
    """fit asks drive_copy where to keep copies: a file in the way must stop the run, not leave
    it without copies on Drive without a word."""
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv(env.RUNS_VAR, str(tmp_path / "runs"))
    monkeypatch.setenv(env.DRIVE_RUNS_VAR, str(tmp_path / "a-file"))
    with pytest.raises(ValueError, match=r"HANDPOSE_DRIVE_RUNS=.*a-file is a file, not a folder"):
        env.drive_copy(tmp_path / "runs" / "03_cnn")


def test_use_drive_in_colab_keeps_runs_archives_and_weights_on_drive(monkeypatch, tmp_path, capsys):
    import sys
    import types

    mounted = []
    drive = types.SimpleNamespace(mount=lambda where: mounted.append(where))
    colab = types.ModuleType("google.colab")
    colab.drive = drive
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setattr(env, "DRIVE", tmp_path / "drive")
    for name in ("HANDPOSE_DRIVE_RUNS", "HANDPOSE_ARCHIVES", "TORCH_HOME", "HANDPOSE_SMOKE"):
        monkeypatch.setenv(name, "")  # so that the test's own settings are undone after it
        monkeypatch.delenv(name)
    monkeypatch.setenv("HANDPOSE_RUNS", str(tmp_path / "runs"))
    assert env.use_drive(False) is None and mounted == [] and env.archives_dir() is None
    assert env.drive_copy(tmp_path / "runs" / "03_cnn") is None
    base = env.use_drive(True)
    assert mounted == [str(tmp_path / "drive")]
    assert base == tmp_path / "drive" / "MyDrive" / "handpose-course"
    assert env.runs_dir() == tmp_path / "runs", "training writes the runtime's own disk"
    assert env.drive_copy(tmp_path / "runs" / "03_cnn") == base / "runs" / "03_cnn"
    assert env.drive_copy(tmp_path / "elsewhere") is None
    assert env.archives_dir() == base / "downloads"
    assert torch.hub.get_dir() == str(base / "torch" / "hub")
    assert env.data_dir() == Path("/content/data"), "datasets stay on the runtime's fast disk"
    assert str(base) in capsys.readouterr().out


def test_use_drive_outside_colab_says_so_and_changes_nothing(monkeypatch, capsys):
    monkeypatch.delenv("HANDPOSE_ARCHIVES", raising=False)
    monkeypatch.delenv("HANDPOSE_DRIVE_RUNS", raising=False)
    runs = env.runs_dir()
    assert env.use_drive(True) is None
    assert env.runs_dir() == runs and env.archives_dir() is None
    assert env.drive_copy(runs / "03_cnn") is None
    assert "Colab only" in capsys.readouterr().out
