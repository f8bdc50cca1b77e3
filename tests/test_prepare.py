"""prepare_splits: cached splits are reused only while the data on disk is the data they came from."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from handpose_utils import load_freihand, prepare
from handpose_utils.datasets import freihand
from handpose_utils.prepare import prepare_splits
from handpose_utils.synthetic.freihand import FREIHAND_GENERATOR_VERSION

SETTINGS = dict(n_poses=6, seed=3, fractions=(0.5, 0.25, 0.25))  # the synthetic_root fixture's


@pytest.fixture
def data_root(tmp_path, synthetic_root):
    """A data folder holding a copy of the session's synthetic FreiHAND (no rendering)."""
    shutil.copytree(synthetic_root, tmp_path / "synthetic_freihand")
    return tmp_path


def by_image(parts):
    return {r["image_path"]: r for part in parts for r in part}


def test_unchanged_data_reuses_the_cache(data_root, monkeypatch, capsys):
    first = prepare_splits("synthetic", data_root, **SETTINGS)
    xyz = data_root / "synthetic_freihand" / "training_xyz.json"
    os.utime(xyz, ns=(xyz.stat().st_atime_ns, xyz.stat().st_mtime_ns + 10**9))  # touched only

    def boom(*args, **kwargs):
        raise AssertionError("the dataset was read again")

    monkeypatch.setattr(freihand, "load_freihand", boom)
    capsys.readouterr()
    again = prepare_splits("synthetic", data_root, **SETTINGS)
    assert by_image(again) == by_image(first)
    assert "rebuild" not in capsys.readouterr().out


def test_edited_annotations_rebuild_the_splits(data_root, capsys):
    prepare_splits("synthetic", data_root, **SETTINGS)
    xyz_path = data_root / "synthetic_freihand" / "training_xyz.json"
    xyz = json.loads(xyz_path.read_text())
    for joint in xyz[0]:
        joint[0] += 0.01  # pose 0 moves 1 cm to the right: its 2D keypoints change
    xyz_path.write_text(json.dumps(xyz))
    capsys.readouterr()

    parts = prepare_splits("synthetic", data_root, **SETTINGS)
    fresh = {r["image_path"]: r for r in load_freihand(data_root / "synthetic_freihand")}
    got = by_image(parts)
    assert got.keys() == fresh.keys()
    for path, rec in got.items():
        assert rec["keypoints"] == fresh[path]["keypoints"], path
    out = capsys.readouterr().out
    assert "rebuilding" in out and "training_xyz.json" in out


def test_another_generator_version_rebuilds_the_splits(data_root, capsys):
    prepare_splits("synthetic", data_root, **SETTINGS)
    meta_path = prepare.splits_dir("synthetic", data_root) / "split_meta.json"
    meta = json.loads(meta_path.read_text())
    assert meta["data"]["generator_version"] == FREIHAND_GENERATOR_VERSION
    meta["data"]["generator_version"] = FREIHAND_GENERATOR_VERSION - 1  # made by an older renderer
    meta_path.write_text(json.dumps(meta))
    capsys.readouterr()
    prepare_splits("synthetic", data_root, **SETTINGS)
    out = capsys.readouterr().out
    assert "rebuilding" in out and "generator" in out
    meta = json.loads(meta_path.read_text())
    assert meta["data"]["generator_version"] == FREIHAND_GENERATOR_VERSION


def test_splits_written_without_a_fingerprint_are_rebuilt_once(data_root, capsys):
    """Splits from an older course version (settings only) are rebuilt, then reused."""
    prepare_splits("synthetic", data_root, **SETTINGS)
    meta_path = prepare.splits_dir("synthetic", data_root) / "split_meta.json"
    meta = json.loads(meta_path.read_text())
    del meta["data"]
    meta_path.write_text(json.dumps(meta))
    capsys.readouterr()
    prepare_splits("synthetic", data_root, **SETTINGS)
    assert "rebuilding" in capsys.readouterr().out
    prepare_splits("synthetic", data_root, **SETTINGS)
    assert "rebuilding" not in capsys.readouterr().out


def test_write_splits_records_the_fingerprint(data_root):
    """Notebook 02 writes splits itself with write_splits; they must count as current."""
    root = data_root / "synthetic_freihand"
    recs = load_freihand(root)
    meta = {"dataset": "synthetic", "root": str(root.resolve()), "n_poses": 6, "seed": 3,
            "fractions": [0.5, 0.25, 0.25], "split_seed": 0, "key": "pose_id"}
    parts = prepare.grouped_split(recs, (0.5, 0.25, 0.25), seed=0)
    prepare.write_splits(parts, prepare.splits_dir("synthetic", data_root), meta)
    written = json.loads((prepare.splits_dir("synthetic", data_root) / "split_meta.json").read_text())
    assert written["data"] == freihand.data_fingerprint(root)


@pytest.fixture
def read_only(tmp_path):
    """``read_only(folder)``: makes ``folder`` unwritable, as a read-only mount is: a read-only
    bind mount as root (who ignores file modes), file modes otherwise."""
    mounted = []

    def make(folder):
        if os.geteuid() != 0:
            for path in [folder, *folder.rglob("*")]:
                path.chmod(path.stat().st_mode & ~0o222)
            return folder
        if subprocess.run(["mount", "--bind", folder, folder], capture_output=True).returncode:
            pytest.skip("cannot mount a read-only folder here")
        mounted.append(folder)
        subprocess.run(["mount", "-o", "remount,ro,bind", folder], check=True)
        return folder

    yield make
    for folder in mounted:
        subprocess.run(["umount", str(folder)], check=True)
    for path in tmp_path.rglob("*"):
        path.chmod(path.stat().st_mode | 0o200)


def test_a_moved_read_only_copy_reuses_its_splits(data_root, tmp_path, read_only, capsys):
    """The splits key on the data's content and paths relative to the data folder: a copy
    elsewhere, read-only (a mounted dataset), reuses them and writes nothing."""
    first = prepare_splits("synthetic", data_root, **SETTINGS)
    copy = read_only(Path(shutil.copytree(data_root, tmp_path / "elsewhere" / "data")))
    capsys.readouterr()
    again = prepare_splits("synthetic", copy, **SETTINGS)
    assert "rebuild" not in capsys.readouterr().out
    moved = {p.replace(str(data_root), str(copy)): r["pose_id"] for p, r in by_image(first).items()}
    assert {p: r["pose_id"] for p, r in by_image(again).items()} == moved
    # other settings there: made in memory, and said, instead of a crash
    other = prepare_splits("synthetic", copy, **dict(SETTINGS, fractions=(0.5, 0.5, 0.0)))
    assert "cannot be written" in capsys.readouterr().out and len(other[2]) == 0


def _prepare_many(data_root, times, first):
    for i in range(times):
        prepare_splits("synthetic", data_root, **SETTINGS, rebuild=i % 2 == first, log=None)


def test_two_processes_preparing_one_data_folder_both_succeed(data_root):
    """Two notebooks preparing the same splits at once, each rebuilding every other call: every
    call of both succeeds (each writer has its own temporaries; the lock makes one wait while
    the other writes), and the splits on disk are whole and current."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods()
                                      else "spawn")
    procs = [ctx.Process(target=_prepare_many, args=(data_root, 16, first)) for first in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    assert [p.exitcode for p in procs] == [0, 0]
    assert sum(map(len, prepare_splits("synthetic", data_root, **SETTINGS, log=None))) == 24
