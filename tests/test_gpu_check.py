"""``python -m handpose_utils.gpu_check``: its dry run (the GPU check at smoke size on the CPU)
writes every part's figures; a failing part is recorded and the others still run."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from handpose_utils import env, gpu_check, safefiles, train

REPO = Path(__file__).resolve().parent.parent
TRAINING_PARTS = ("notebook03", "notebook05", "notebook06")


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_dry_run_writes_every_part_and_leaves_no_runs(tmp_path):
    out, runs, tmp = tmp_path / "out" / "check.json", tmp_path / "runs", tmp_path / "tmp"
    tmp.mkdir()
    environ = {**os.environ, "HANDPOSE_RUNS": str(runs), "TMPDIR": str(tmp), "TQDM_DISABLE": "1"}
    argv = ["--dry-run", "--max-steps", "2", "--data", str(tmp_path / "data"), "--out", str(out)]
    proc = subprocess.run([sys.executable, "-m", "handpose_utils.gpu_check", *argv], cwd=REPO,
                          env=environ, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]

    result = json.loads(out.read_text())
    assert list(result["parts"]) == ["throughput", *TRAINING_PARTS]
    assert result["failed"] == [] and result["dry_run"] is True and result["device"] == "cpu"
    assert result["command"].endswith("gpu_check " + " ".join(argv))
    assert result["torch"] == torch.__version__ and _positive(result["total_s"])
    for part in result["parts"].values():
        assert part["ok"] is True and part["amp"] == "off (fp32)" and part["device_name"]
        assert part["peak_gpu_mem_mb"] is None and _positive(part["wall_s"])  # no GPU here
    speeds = result["parts"]["throughput"]["models"]
    assert speeds and all(_positive(v[mode]) for v in speeds.values()
                          for mode in ("reference", "course", "compute"))
    for name in TRAINING_PARTS:
        part = result["parts"][name]
        for key in ("images_per_s", "epoch_s", "train_s", "prepare_s", "train_loss", "batch"):
            assert _positive(part[key]), (name, key, part[key])
        assert part["steps_run"] == min(2, part["steps_per_epoch"])
        assert part["epoch_s"] == pytest.approx(
            part["train_s"] * part["steps_per_epoch"] / part["steps_run"])
        assert part["images_per_s"] == pytest.approx(
            part["steps_run"] * part["batch"] / part["train_s"])
    # at least one epoch is cut short, so the extrapolation is exercised
    assert any(result["parts"][n]["steps_run"] < result["parts"][n]["steps_per_epoch"]
               for n in TRAINING_PARTS)
    assert all(name in proc.stdout.split("failed parts")[0] for name in TRAINING_PARTS)
    assert "failed parts: none" in proc.stdout
    # the checkpoints went to a temporary folder, now gone; the user's runs were not touched
    assert not runs.exists() and not list(tmp.glob("handpose-gpu-check-*"))


def test_a_failing_part_is_recorded_and_the_others_still_run(tmp_path, monkeypatch, capsys):
    def out_of_memory(*args):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setitem(gpu_check.PARTS, "throughput", out_of_memory)
    monkeypatch.setattr(train, "main", lambda argv: 2)  # train.py's status when it refuses
    smoke_before = os.environ.get(env.SMOKE_VAR)
    out = tmp_path / "check.json"

    status = gpu_check.main(["--dry-run", "--data", str(tmp_path / "data"), "--out", str(out)])

    assert status == 1
    result = json.loads(out.read_text())
    assert result["failed"] == ["throughput", "notebook03", "notebook06"]
    failed = result["parts"]["throughput"]
    assert failed["ok"] is False
    assert failed["error"] == "RuntimeError: CUDA out of memory (simulated)"
    assert "out_of_memory" in failed["traceback"] and _positive(failed["wall_s"])
    assert "handpose_utils.train hands" in result["parts"]["notebook03"]["error"]
    assert "handpose_utils.train coco" in result["parts"]["notebook06"]["error"]
    # notebook 05 trains after the failures, for real
    assert result["parts"]["notebook05"]["ok"] is True
    assert _positive(result["parts"]["notebook05"]["images_per_s"])
    assert "FAILED: RuntimeError: CUDA out of memory" in capsys.readouterr().out
    assert os.environ.get(env.SMOKE_VAR) == smoke_before  # the dry run's smoke mode is undone


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_it_points_to_the_dry_run(tmp_path, capsys):
    out = tmp_path / "check.json"
    with pytest.raises(SystemExit):
        gpu_check.main(["--out", str(out)])
    assert "no CUDA GPU here" in capsys.readouterr().err
    assert not out.exists()


def test_bad_options_are_refused_before_any_part_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gpu_check, "PARTS", {})  # nothing may run
    with pytest.raises(SystemExit):
        gpu_check.main(["--dry-run", "--max-steps", "0", "--out", str(tmp_path / "x.json")])
    assert "--max-steps 0: give 1 or more" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
    with pytest.raises(safefiles.WriteError, match=re.escape(str(tmp_path))):
        gpu_check.main(["--dry-run", "--out", str(tmp_path)])  # a folder, not a file
