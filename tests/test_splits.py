"""Random and grouped splits, and the leak counter."""

import pytest

from handpose_utils.splits import count_pose_leak, grouped_split, random_split


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


@pytest.mark.parametrize("fractions", [(float("nan"), 0.5, 0.5), (0.8, float("inf"), 0.1),
                                       (1.2, -0.1, -0.1), (0.5, 0.3)])
def test_bad_fractions_are_rejected(fractions):
    for split in (grouped_split, random_split):
        with pytest.raises(ValueError, match=r"fractions .*finite.*sum to 1"):
            split(make_records(), fractions)


def test_too_few_groups_for_the_requested_splits():
    recs = make_records(2)  # 2 poses, 8 records
    with pytest.raises(ValueError, match=r"2 groups .*'pose_id'.* 3 .*splits"):
        grouped_split(recs, (0.8, 0.1, 0.1))
    with pytest.raises(ValueError, match=r"0 groups"):
        grouped_split([], (0.8, 0.1, 0.1))
    with pytest.raises(ValueError, match=r"2 records .* 3 .*splits"):
        random_split(recs[:2], (0.8, 0.1, 0.1))
    # A zero fraction asks for an empty split: two groups are enough for two non-empty ones.
    train, val, test = grouped_split(recs, (0.9, 0.1, 0.0))
    assert len(train) == 4 and len(val) == 4 and test == []


def test_keys_differing_only_in_type_are_not_two_groups():
    recs = [{"pose_id": 0, "id": 0}, {"pose_id": 1, "id": 1}, {"pose_id": 2, "id": 2},
            {"pose_id": "0", "id": 3}]  # record 3 is pose 0 written as a string
    with pytest.raises(ValueError, match=r"record 0 and record 3 .*0 \(int\).*'0' \(str\)"):
        grouped_split(recs, (0.5, 0.25, 0.25))
    with pytest.raises(ValueError, match=r"0 \(int\).*'0' \(str\)"):
        count_pose_leak(recs[:1], recs[3:])
