"""Checks for notebook 02 (dataset splitting): a grouped split, a leak counter, a stratified
grouped split. Each builds small record lists with known groups; none needs a dataset."""

from __future__ import annotations

import numpy as np

from . import Wrong, exercise


def _records(n_groups: int, seed: int = 0, key: str = "pose_id") -> list[dict]:
    """Records in groups of 1 to 6 (sizes differ, so record and group shares differ), each with
    a unique ``id`` and a ``size`` value shared by its group (a permutation of 0..n-1)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 7, n_groups)
    values = rng.permutation(n_groups)
    recs = [{key: int(g), "version": v, "size": float(values[g]) + 0.01 * v}
            for g in range(n_groups) for v in range(sizes[g])]
    order = rng.permutation(len(recs))  # records of one group are not next to each other
    recs = [recs[i] for i in order]
    for i, r in enumerate(recs):
        r["id"] = i
    return recs


def _parts(out, n, what):
    try:
        parts = [list(p) for p in out]
    except TypeError as err:
        raise Wrong(f"{what} must return {n} lists of records, got {type(out).__name__}") from err
    if len(parts) != n:
        raise Wrong(f"{what} must return {n} parts (one per fraction), got {len(parts)}")
    return parts


def _no_loss_no_leak(parts, records, key, what):
    ids = sorted(r["id"] for p in parts for r in p)
    if ids != list(range(len(records))):
        lost = len(records) - len(set(ids))
        raise Wrong(f"{what}: every record must be in exactly one part; "
                    + (f"{lost} of {len(records)} records are missing"
                       if lost > 0 else "some records appear twice"))
    home: dict = {}
    for k, p in enumerate(parts):
        for r in p:
            if home.setdefault(r[key], k) != k:
                raise Wrong(f"{what}: group {key}={r[key]!r} has records in part {home[r[key]]} "
                            f"and in part {k}: that is the leak a grouped split must prevent")


# --- 02.1 grouped split ------------------------------------------------------------------------


def _per_record(records, fractions, key="pose_id", seed=0):
    """A typical mistake: shuffling records instead of groups (the leaky split)."""
    order = np.random.default_rng(seed).permutation(len(records))
    bounds = np.cumsum(np.round(np.asarray(fractions) * len(records)).astype(int))[:-1]
    return [[records[i] for i in part] for part in np.split(order, bounds)]


def _equal_thirds(records, fractions, key="pose_id", seed=0):
    """A typical mistake: groups dealt round-robin, ignoring the fractions."""
    parts = [[] for _ in fractions]
    for r in records:
        parts[r[key] % len(fractions)].append(r)
    return parts


def _floor_counts(records, fractions, key="pose_id", seed=0):
    """A typical mistake: int(f * n) groups per part, which drops the leftover groups."""
    groups = sorted({r[key] for r in records})
    order = np.random.default_rng(seed).permutation(len(groups))
    counts = [int(f * len(groups)) for f in fractions]
    part_of, start = {}, 0
    for k, c in enumerate(counts):
        for i in order[start:start + c]:
            part_of[groups[i]] = k
        start += c
    parts = [[] for _ in fractions]
    for r in records:
        if r[key] in part_of:
            parts[part_of[r[key]]].append(r)
    return parts


@exercise("02.1", "grouped split",
          hint="shuffle the sorted distinct keys with np.random.default_rng(seed).permutation; "
               "counts = floor(f * n_groups) plus the leftovers to the largest remainders; then "
               "each record goes to its group's part.",
          wrong=[_per_record, _equal_thirds, _floor_counts])
def _(grouped_split):
    records = _records(303)
    for fractions in ((0.8, 0.1, 0.1), (0.6, 0.2, 0.2)):
        what = f"my_grouped_split(records, {fractions})"
        parts = _parts(grouped_split(records, fractions, key="pose_id", seed=0), 3, what)
        _no_loss_no_leak(parts, records, "pose_id", what)
        shares = np.array([len({r["pose_id"] for r in p}) for p in parts]) / 303
        if np.abs(shares - fractions).max() > 0.01:
            raise Wrong(f"{what}: the parts hold {shares.round(3).tolist()} of the groups, "
                        f"expected {list(fractions)} (fractions of groups, not of records)")
    other = [dict(r, subject=r["pose_id"] // 2) for r in records]
    parts = _parts(grouped_split(other, (0.5, 0.5), key="subject", seed=0), 2, "key='subject'")
    _no_loss_no_leak(parts, other, "subject", "my_grouped_split(..., key='subject')")
    a = _parts(grouped_split(records, (0.8, 0.1, 0.1), key="pose_id", seed=1), 3, "seed=1")
    b = _parts(grouped_split(records, (0.8, 0.1, 0.1), key="pose_id", seed=1), 3, "seed=1")
    c = _parts(grouped_split(records, (0.8, 0.1, 0.1), key="pose_id", seed=2), 3, "seed=2")
    ids = [[[r["id"] for r in p] for p in s] for s in (a, b, c)]
    if ids[0] != ids[1]:
        raise Wrong("the same seed must give the same split")
    if ids[0] == ids[2]:
        raise Wrong("a different seed must give a different split: shuffle with the seed")
    return "No group is in two parts, no record is lost, the group shares match the fractions."


# --- 02.2 leak counter -------------------------------------------------------------------------


def _record_fraction(train, other, key="pose_id"):
    """A typical mistake: the share of other's *records* whose group is in train."""
    keys = {r[key] for r in train}
    return sum(r[key] in keys for r in other) / len(other) if other else 0.0


def _same_record(train, other, key="pose_id"):
    """A typical mistake: looking for the same record (same image), not the same pose."""
    groups = {r[key] for r in other}
    leaked = {r[key] for r in other if r in train}
    return len(leaked) / len(groups) if groups else 0.0


def _of_train(train, other, key="pose_id"):
    """A typical mistake: dividing by train's groups instead of other's."""
    a, b = {r[key] for r in train}, {r[key] for r in other}
    return len(a & b) / len(a) if a else 0.0


@exercise("02.2", "leak counter",
          hint="len({r[key] for r in other} & {r[key] for r in train}) divided by the number of "
               "distinct keys in other; 0.0 when other is empty.",
          wrong=[_record_fraction, _same_record, _of_train])
def _(leak_fraction):
    def recs(keys, key="pose_id", version=0):
        return [{key: k, "version": version} for k in keys]

    cases = [
        (recs([1, 2, 3, 6]), recs([2, 2, 2, 4, 5], version=1), "pose_id", 1 / 3,
         "train poses {1, 2, 3, 6}, other poses [2, 2, 2, 4, 5] (other versions)"),
        (recs([7]), recs([7], version=3), "pose_id", 1.0,
         "a training image and its sibling (same pose_id, another version)"),
        (recs([1, 2]), recs([3, 4]), "pose_id", 0.0, "no shared pose"),
        (recs([1, 2]), [], "pose_id", 0.0, "an empty other split"),
        (recs(["a", "b"], key="subject"), recs(["b", "c"], key="subject"), "subject", 0.5,
         "key='subject' with subjects {a, b} and {b, c}"),
    ]
    for train, other, key, expected, what in cases:
        got = leak_fraction(train, other, key=key)
        try:
            ok = abs(float(got) - expected) < 1e-9
        except (TypeError, ValueError) as err:
            raise Wrong(f"leak_fraction must return a number, got {type(got).__name__}") from err
        if not ok:
            raise Wrong(f"for {what} the leaked fraction of other's groups is "
                        f"{expected:.4g}, got {got!r}")
    return "Leaks are counted per group, siblings included, and relative to the other split."


# --- 02.3 stratified grouped split -------------------------------------------------------------


def _sorted_cut(records, by, key="pose_id", seed=0):
    """A typical mistake: sort the groups by the value and cut: the test set gets the largest."""
    values: dict = {}
    for r in records:
        values.setdefault(r[key], []).append(r[by])
    groups = sorted(values, key=lambda g: np.mean(values[g]))
    n = len(groups)
    part_of = {g: 0 if i < 0.8 * n else (1 if i < 0.9 * n else 2) for i, g in enumerate(groups)}
    parts = ([], [], [])
    for r in records:
        parts[part_of[r[key]]].append(r)
    return parts


def _per_record_blocks(records, by, key="pose_id", seed=0):
    """A typical mistake: stratify the records, not the groups (a group's records get split)."""
    order = sorted(range(len(records)), key=lambda i: records[i][by])
    rng = np.random.default_rng(seed)
    parts = ([], [], [])
    for start in range(0, len(order), 10):
        block = [order[i] for i in rng.permutation(range(start, min(start + 10, len(order))))]
        for i, idx in enumerate(block):
            parts[0 if len(block) < 10 or i < 8 else (1 if i == 8 else 2)].append(records[idx])
    return parts


@exercise("02.3", "stratified grouped split",
          hint="values = {group: mean of record[by]}; groups sorted by value; for each block of "
               "10 consecutive groups, shuffle it and send 8 to train, 1 to val, 1 to test.",
          wrong=[_sorted_cut, _per_record_blocks])
def _(stratified_grouped_split):
    n = 200
    records = _records(n, seed=1)
    what = "stratified_grouped_split(records, 'size')"
    parts = _parts(stratified_grouped_split(records, "size", key="pose_id", seed=0), 3, what)
    _no_loss_no_leak(parts, records, "pose_id", what)
    value = {r["pose_id"]: round(r["size"]) for r in records}  # 0..199, one per group
    groups = [sorted({r["pose_id"] for r in p}) for p in parts]
    counts = [len(g) for g in groups]
    if counts != [160, 20, 20]:
        raise Wrong(f"200 groups must give 160 / 20 / 20 groups, got {counts}")
    for name, g in zip(("val", "test"), groups[1:]):
        v = np.array([value[k] for k in g])
        missing = sorted(set(range(10)) - set((v // 20).tolist()))
        if missing:
            raise Wrong(f"{name} has no group with 'size' in the tenth(s) {missing} of the range "
                        f"0..199 (its sizes span {v.min()}..{v.max()}): each block of 10 sorted "
                        "groups must give one group to val and one to test")
    again = _parts(stratified_grouped_split(records, "size", key="pose_id", seed=1), 3, what)
    if [sorted(r["id"] for r in p) for p in again] == [sorted(r["id"] for r in p) for p in parts]:
        raise Wrong("a different seed must give a different split: shuffle each block")
    return "Val and test each cover every tenth of the range, and no group is split."
