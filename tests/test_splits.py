"""Random and grouped splits, and the leak counter."""

import pytest

from handpose_utils import count_pose_leak, grouped_split, random_split


def make_records(n_poses=50, versions=4):
    return [{"pose_id": p, "version": v, "id": p + n_poses * v} for v in range(versions)
            for p in range(n_poses)]


def test_grouped_split_has_no_leak_and_keeps_everything():
    recs = make_records()
    train, val, test = grouped_split(recs, (0.8, 0.1, 0.1), seed=1)
    assert len(train) + len(val) + len(test) == len(recs)
    assert sorted(r["id"] for r in train + val + test) == list(range(200))
    for part in (val, test):
        assert count_pose_leak(train, part)["leaked_groups"] == 0
    assert count_pose_leak(val, test)["leaked_groups"] == 0
    assert (len({r["pose_id"] for r in train}), len({r["pose_id"] for r in val})) == (40, 5)
    assert all(len([r for r in train if r["pose_id"] == p]) == 4 for p in {r["pose_id"] for r in train})


def test_grouped_split_is_deterministic_and_seeded():
    recs = make_records()
    a = grouped_split(recs, seed=0)
    assert a == grouped_split(recs, seed=0)
    assert a != grouped_split(recs, seed=1)


def test_random_split_leaks():
    recs = make_records(200)
    train, val, _ = random_split(recs, (0.8, 0.1, 0.1), seed=0)
    leak = count_pose_leak(train, val)
    assert len(val) == 80
    assert leak["leaked_fraction"] > 0.9  # ~1 - 0.2^3 of the poses
    assert leak["leaked_records"] >= leak["leaked_groups"]


def test_count_pose_leak_by_hand():
    train = [{"pose_id": 1}, {"pose_id": 2}]
    other = [{"pose_id": 2}, {"pose_id": 2}, {"pose_id": 3}]
    assert count_pose_leak(train, other) == {
        "groups": 2, "leaked_groups": 1, "leaked_fraction": 0.5, "leaked_records": 2}


def test_small_sets_still_fill_every_part():
    train, val, test = grouped_split(make_records(3), (0.8, 0.1, 0.1))
    assert len(train) == 4 and len(val) == 4 and len(test) == 4


def test_bad_arguments():
    with pytest.raises(ValueError, match="sum to 1"):
        grouped_split(make_records(), (0.8, 0.3))
    with pytest.raises(KeyError, match="pose_id"):
        grouped_split([{"x": 1}])
