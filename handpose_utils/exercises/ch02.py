"""Checks for notebook 02 (dataset splitting): a grouped split, a leak counter, a stratified
grouped split and k-fold cross-validation by groups. Each builds small record lists with known
groups (random group sizes and values, group counts that do not divide evenly); none needs a
dataset. Every check also makes sure the answer leaves the caller's records as they were."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import numpy as np

from . import Wrong, exercise


def _records(n_groups: int, seed: int = 0, key: str = "pose_id") -> list[dict]:
    """Records in groups of 1 to 6 (sizes differ, so record and group shares differ), each with
    a unique ``id``, a string ``subject`` (two groups per subject) and a random ``size``: the
    group's level plus a spread larger than the gap between levels, so a group's first record
    does not rank it like its mean does. Records of one group are not next to each other."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 7, n_groups)
    level = rng.uniform(0, 100, n_groups)
    recs = [{key: int(g), "subject": f"s{g // 2:03d}", "version": v,
             "size": float(level[g] + rng.normal(0, 8))}
            for g in range(n_groups) for v in range(sizes[g])]
    order = rng.permutation(len(recs))
    recs = [recs[i] for i in order]
    for i, r in enumerate(recs):
        r["id"] = i
    return recs


def _call(fn, what, records, *args, **kwargs):
    """``fn(records, ...)``, then make sure the caller's list and its records are unchanged."""
    before = copy.deepcopy(records)
    ids = [id(r) for r in records]
    out = fn(records, *args, **kwargs)
    _unchanged(before, ids, records, what)
    return out


def _unchanged(before, ids, after, what):
    if len(after) != len(before):
        raise Wrong(f"{what} changed the list it was given: it held {len(before)} records, now "
                    f"{len(after)}. Work on a copy (or build new lists) instead.")
    if [id(r) for r in after] != ids:
        raise Wrong(f"{what} reordered the list it was given (sorted or shuffled it in place). "
                    "Work on a copy, or build new lists; the caller's order must stay.")
    for i, (b, a) in enumerate(zip(before, after)):
        if a != b:
            added = sorted(set(a) - set(b))
            changed = sorted(k for k in set(a) & set(b) if a[k] != b[k])
            detail = (f"it gained the key(s) {added}" if added else
                      f"its {changed[0]!r} went from {b[changed[0]]!r} to {a[changed[0]]!r}"
                      if changed else f"it lost the key(s) {sorted(set(b) - set(a))}")
            raise Wrong(f"{what} modified the caller's record {i}: {detail}. Keep the records "
                        "as they are (keep per-group values in a dict of your own).")


def _parts(out, n, what):
    try:
        parts = [list(p) for p in out]
    except TypeError as err:
        raise Wrong(f"{what} must return {n} lists of records, got {type(out).__name__}") from err
    if len(parts) != n:
        raise Wrong(f"{what} must return {n} parts (one per fraction), got {len(parts)}")
    for k, p in enumerate(parts):
        if not all(isinstance(r, dict) for r in p):
            raise Wrong(f"{what}: part {k} must hold the records themselves (dicts), got "
                        f"{type(next(r for r in p if not isinstance(r, dict))).__name__}")
    return parts


def _no_loss_no_leak(parts, records, key, what):
    ids = sorted(r["id"] for p in parts for r in p)
    if ids != list(range(len(records))):
        lost = len(records) - len(set(ids))
        raise Wrong(f"{what}: every record must be in exactly one part; "
                    + (f"{lost} of {len(records)} records are missing"
                       if lost > 0 else f"{len(ids) - len(set(ids))} records appear twice"))
    home: dict = {}
    for k, p in enumerate(parts):
        for r in p:
            if home.setdefault(r[key], k) != k:
                raise Wrong(f"{what}: group {key}={r[key]!r} has records in part {home[r[key]]} "
                            f"and in part {k}: that is the leak a grouped split must prevent")


def _part_of(parts, key):
    return {r[key]: k for k, p in enumerate(parts) for r in p}


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
        parts[hash(r[key]) % len(fractions)].append(r)
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


def _first_seen(records, fractions, key="pose_id", seed=0):
    """A typical mistake: groups in the order the records first show them, not sorted, so the
    same records in another order give another split."""
    groups = list(dict.fromkeys(r[key] for r in records))
    order = np.random.default_rng(seed).permutation(len(groups))
    f = np.asarray(fractions, dtype=float)
    counts = np.floor(f * len(groups)).astype(int)
    for i in np.argsort(-(f * len(groups) - counts))[: len(groups) - counts.sum()]:
        counts[i] += 1
    part_of = {}
    for part, idx in enumerate(np.split(order, np.cumsum(counts)[:-1])):
        for i in idx:
            part_of[groups[i]] = part
    parts = [[] for _ in f]
    for r in records:
        parts[part_of[r[key]]].append(r)
    return parts


def _sorts_in_place(records, fractions, key="pose_id", seed=0):
    """A typical mistake: sorting the caller's list in place on the way."""
    records.sort(key=lambda r: r[key])
    return _first_seen(records, fractions, key, seed)


@exercise("02.1", "grouped split",
          nudge="work on groups, not records: the set of record[key] values, sorted, is what "
                "you shuffle and cut; section 1's random_split cuts a shuffled list the same way, "
                "and its _counts makes counts that add up. Each record then just looks up its "
                "group's part.",
          hint="groups = sorted distinct keys; order = np.random.default_rng(seed).permutation("
               "len(groups)); counts = floor(f * n_groups) plus one for the parts with the "
               "largest remainders until they add up; part_of = {group: part} from "
               "np.split(order, np.cumsum(counts)[:-1]); then each record goes to "
               "parts[part_of[record[key]]] (new lists, the input untouched).",
          wrong=[_per_record, _equal_thirds, _floor_counts, _first_seen, _sorts_in_place])
def _(grouped_split):
    records = _records(303)
    n = 303
    for fractions in ((0.8, 0.1, 0.1), (0.5, 0.25, 0.25), (0.4, 0.3, 0.2, 0.1)):
        what = f"my_grouped_split(records, {fractions})"
        out = _call(grouped_split, what, records, fractions, key="pose_id", seed=0)
        parts = _parts(out, len(fractions), what)
        _no_loss_no_leak(parts, records, "pose_id", what)
        counts = [len({r["pose_id"] for r in p}) for p in parts]
        for k, (c, f) in enumerate(zip(counts, fractions)):
            if abs(c - f * n) >= 1:
                raise Wrong(f"{what} with {n} groups: part {k} holds {c} groups, but "
                            f"{f} x {n} = {f * n:.2f}, so it should hold {int(np.floor(f * n))} "
                            f"or {int(np.ceil(f * n))} (all counts: {counts}; fractions are "
                            "shares of groups, and each count is f x n rounded down or up)")
    what = "my_grouped_split(records, (0.5, 0.5), key='subject')"
    parts = _parts(_call(grouped_split, what, records, (0.5, 0.5), key="subject", seed=0), 2, what)
    _no_loss_no_leak(parts, records, "subject", what)
    if not parts[0] or not parts[1]:
        raise Wrong(f"{what}: one part is empty; half of the subjects should go to each")
    a = _parts(grouped_split(records, (0.8, 0.1, 0.1), key="pose_id", seed=1), 3, "seed=1")
    b = _parts(grouped_split(records, (0.8, 0.1, 0.1), key="pose_id", seed=1), 3, "seed=1")
    c = _parts(grouped_split(records, (0.8, 0.1, 0.1), key="pose_id", seed=2), 3, "seed=2")
    ids = [[sorted(r["id"] for r in p) for p in s] for s in (a, b, c)]
    if ids[0] != ids[1]:
        raise Wrong("two calls with the same seed gave different splits: shuffle with "
                    "np.random.default_rng(seed), not with the global random state")
    if ids[0] == ids[2]:
        raise Wrong("seeds 1 and 2 gave the same split: shuffle the groups with the seed")
    backwards = records[::-1]
    d = _parts(grouped_split(backwards, (0.8, 0.1, 0.1), key="pose_id", seed=1), 3,
               "the same records in reverse order")
    moved = sum(_part_of(a, "pose_id")[g] != k for g, k in _part_of(d, "pose_id").items())
    if moved:
        raise Wrong(f"the same records in reverse order (same seed) put {moved} of {n} groups "
                    "in another part: the split must depend on the groups and the seed only, "
                    "not on the order of the records (sort the distinct keys before shuffling)")
    return ("No group is in two parts, no record is lost, every part holds f x n groups rounded "
            "down or up, and the split depends only on the groups and the seed.")


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


def _pose_id_only(train, other, key="pose_id"):
    """A typical mistake: ignoring ``key``."""
    a, b = {r["pose_id"] for r in train}, {r["pose_id"] for r in other}
    return len(a & b) / len(b) if b else 0.0


@exercise("02.2", "leak counter",
          nudge="compare sets of keys, not lists of records: which record[key] values are in "
                "both splits, and how many distinct values does other have?",
          hint="len({r[key] for r in other} & {r[key] for r in train}) divided by the number of "
               "distinct keys in other; 0.0 when other is empty.",
          wrong=[_record_fraction, _same_record, _of_train, _pose_id_only])
def _(leak_fraction):
    def recs(keys, key="pose_id", version=0):
        return [{key: k, "version": version, "pose_id": -1 if key != "pose_id" else k}
                for k in keys]

    rng = np.random.default_rng(2)
    rand_train = recs(rng.integers(0, 60, 90).tolist())
    rand_other = recs(rng.integers(40, 100, 45).tolist(), version=1)
    a, b = {r["pose_id"] for r in rand_train}, {r["pose_id"] for r in rand_other}
    cases = [
        (recs([1, 2, 3, 6]), recs([2, 2, 2, 4, 5], version=1), "pose_id", 1, 3,
         "train poses {1, 2, 3, 6}, other poses [2, 2, 2, 4, 5] (other versions)"),
        (recs([7]), recs([7], version=3), "pose_id", 1, 1,
         "a training image and its sibling (same pose_id, another version)"),
        (recs([1, 2]), recs([3, 4]), "pose_id", 0, 2, "no shared pose"),
        (recs([1, 2]), [], "pose_id", 0, 0, "an empty other split"),
        (recs(["a", "b"], key="subject"), recs(["b", "c"], key="subject"), "subject", 1, 2,
         "key='subject' with subjects {a, b} and {b, c} (every record has pose_id -1)"),
        (rand_train, rand_other, "pose_id", len(a & b), len(b),
         f"random lists ({len(rand_train)} train and {len(rand_other)} other records, "
         f"repeated poses)"),
    ]
    for train, other, key, leaked, groups, what in cases:
        before = (copy.deepcopy(train), copy.deepcopy(other))
        got = leak_fraction(train, other, key=key)
        if (train, other) != before:
            raise Wrong(f"for {what}, leak_fraction changed the lists it was given; only read them")
        expected = leaked / groups if groups else 0.0
        if isinstance(got, (bool, np.bool_)) or not isinstance(got, (int, float, np.number)):
            raise Wrong(f"leak_fraction must return a number, got {type(got).__name__} {got!r}")
        if abs(float(got) - expected) > 1e-9:
            raise Wrong(f"for {what}: {leaked} of other's {groups} distinct groups are in train, "
                        f"so the leaked fraction is {expected:.6f}; yours returned {float(got):.6f}")
    return "Leaks are counted per group, siblings included, and relative to the other split."


# --- 02.3 stratified grouped split -------------------------------------------------------------


def _group_means(records, by, key):
    values: dict = {}
    for r in records:
        values.setdefault(r[key], []).append(r[by])
    return {g: float(np.mean(v)) for g, v in values.items()}


def _sorted_cut(records, by, key="pose_id", seed=0):
    """A typical mistake: sort the groups by the value and cut: the test set gets the largest."""
    mean = _group_means(records, by, key)
    groups = sorted(mean, key=mean.get)
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


def _deal(groups, records, key, order, short_to_train=True):
    """Deal ranked ``groups`` block by block (``order(start, stop)`` gives a block's indices) 8 / 1
    / 1, a short last block to train; each record follows its group. The wrong answers below
    differ from the solution in one step each."""
    part_of = {}
    for start in range(0, len(groups), 10):
        block = [groups[i] for i in order(start, min(start + 10, len(groups)))]
        for i, g in enumerate(block):
            short = short_to_train and len(block) < 10
            part_of[g] = 0 if short or i < 8 else (1 if i == 8 else 2)
    parts = ([], [], [])
    for r in records:
        parts[part_of[r[key]]].append(r)
    return parts


def _ranked(records, by, key):
    mean = _group_means(records, by, key)
    return sorted(mean, key=mean.get)


def _short_block_dealt(records, by, key="pose_id", seed=0):
    """A typical mistake: the short last block is dealt like a full one (its 9th group to val)."""
    rng = np.random.default_rng(seed)
    return _deal(_ranked(records, by, key), records, key,
                 lambda a, b: rng.permutation(range(a, b)), short_to_train=False)


def _first_value(records, by, key="pose_id", seed=0):
    """A typical mistake: ranking a group by its first record's value, not by its mean."""
    first: dict = {}
    for r in records:
        first.setdefault(r[key], r[by])
    rng = np.random.default_rng(seed)
    return _deal(sorted(first, key=first.get), records, key,
                 lambda a, b: rng.permutation(range(a, b)))


def _new_generator_per_block(records, by, key="pose_id", seed=0):
    """A typical mistake: a new generator for every block, so every block is shuffled alike."""
    return _deal(_ranked(records, by, key), records, key,
                 lambda a, b: np.random.default_rng(seed).permutation(range(a, b)))


def _blocks_not_shuffled(records, by, key="pose_id", seed=0):
    """A typical mistake: the blocks are dealt in rank order, never shuffled."""
    return _deal(_ranked(records, by, key), records, key, lambda a, b: range(a, b))


@exercise("02.3", "stratified grouped split",
          nudge="rank groups, not records: one mean per group (a dict), the groups sorted by it; "
                "a block is 10 consecutive ranks, and only a full block is dealt 8 / 1 / 1. What "
                "happens to a block of fewer than 10?",
          hint="values = {group: mean of record[by]}; groups sorted by value; one rng = "
               "np.random.default_rng(seed); for each block of 10 consecutive groups (the last "
               "may be shorter), shuffle it with rng.permutation and send 8 to train, 1 to val, "
               "1 to test, or all of a short last block to train; then each record goes to its "
               "group's part (new lists, the records untouched).",
          wrong=[_sorted_cut, _per_record_blocks, _short_block_dealt, _first_value,
                 _new_generator_per_block, _blocks_not_shuffled])
def _(stratified_grouped_split):
    for n, key in ((209, "pose_id"), (203, "pose_id"), (58, "subject")):
        # 58 subjects of two poses each (one pose may lack records, so count them)
        records = _records(n if key == "pose_id" else 116, seed=n)
        what = f"stratified_grouped_split(records, 'size', key={key!r})"
        out = _call(stratified_grouped_split, what, records, "size", key=key, seed=0)
        parts = _parts(out, 3, what)
        _no_loss_no_leak(parts, records, key, what)
        mean = _group_means(records, "size", key)
        ranked = sorted(mean, key=mean.get)
        part_of = _part_of(parts, key)
        total = len(ranked)
        val_ranks = set()  # where in its block the validation group sits
        for start in range(0, total, 10):
            block = ranked[start:start + 10]
            got = [sum(part_of[g] == k for g in block) for k in range(3)]
            val_ranks |= {i for i, g in enumerate(block) if part_of[g] == 1 and len(block) == 10}
            where = f"the groups ranked {start + 1}..{start + len(block)} by their mean 'size'"
            if len(block) == 10 and got != [8, 1, 1]:
                raise Wrong(f"{what} with {total} groups: {where} (a full block of 10) went "
                            f"{got[0]} / {got[1]} / {got[2]} to train / val / test; each full "
                            "block must give 8 / 1 / 1")
            if len(block) < 10 and got != [len(block), 0, 0]:
                raise Wrong(f"{what} with {total} groups: {where} form a short last block of "
                            f"{len(block)}; all of it goes to train, but {got[1]} went to val "
                            f"and {got[2]} to test")
        if len(val_ranks) == 1:
            raise Wrong(f"{what} with {total} groups: in every full block the validation group "
                        f"is the one ranked {val_ranks.pop() + 1} of 10, so validation holds "
                        "groups of one size rank only: shuffle each block (rng.permutation), "
                        "with ONE generator made once (np.random.default_rng(seed) before the "
                        "loop), not a new one per block")
    again = _parts(stratified_grouped_split(records, "size", key=key, seed=1), 3, what)
    if [sorted(r["id"] for r in p) for p in again] == [sorted(r["id"] for r in p) for p in parts]:
        raise Wrong("seeds 0 and 1 gave the same split: shuffle each block with the seed's rng")
    return ("Every full block of 10 ranked groups gives 8 / 1 / 1, a short last block goes to "
            "train, no group is split and the records are untouched.")


# --- 02.4 k-fold cross-validation by groups (transfer) ----------------------------------------


def _kfold_per_record(records, k, key="pose_id", seed=0):
    """A typical mistake: folds of records, not of groups (a pose is on both sides)."""
    if not 2 <= k <= len({r[key] for r in records}):
        raise ValueError(f"k must be in 2..n_groups, got {k}")
    order = np.random.default_rng(seed).permutation(len(records))
    folds = np.array_split(order, k)
    return [([records[j] for f in folds[:i] + folds[i + 1:] for j in f],
             [records[j] for j in folds[i]]) for i in range(k)]


def _kfold_remainder_last(records, k, key="pose_id", seed=0):
    """A typical mistake: n // k groups per fold and the whole remainder in the last fold."""
    groups = sorted({r[key] for r in records})
    if not 2 <= k <= len(groups):
        raise ValueError(f"k must be in 2..n_groups, got {k}")
    order = np.random.default_rng(seed).permutation(len(groups))
    size = len(groups) // k
    fold_of = {groups[g]: min(i // size, k - 1) for i, g in enumerate(order)}
    return [([r for r in records if fold_of[r[key]] != i],
             [r for r in records if fold_of[r[key]] == i]) for i in range(k)]


def _kfold_train_is_all(records, k, key="pose_id", seed=0):
    """A typical mistake: training on every record, the validation fold included."""
    groups = sorted({r[key] for r in records})
    if not 2 <= k <= len(groups):
        raise ValueError(f"k must be in 2..n_groups, got {k}")
    order = np.random.default_rng(seed).permutation(len(groups))
    fold_of = {groups[g]: i % k for i, g in enumerate(order)}
    return [(list(records), [r for r in records if fold_of[r[key]] == i]) for i in range(k)]


def _kfold_no_check(records, k, key="pose_id", seed=0):
    """A typical mistake: no check of k (k = 1 'validates' on everything, trains on nothing)."""
    groups = sorted({r[key] for r in records})
    order = np.random.default_rng(seed).permutation(len(groups))
    fold_of = {groups[g]: i % k for i, g in enumerate(order)}
    return [([r for r in records if fold_of[r[key]] != i],
             [r for r in records if fold_of[r[key]] == i]) for i in range(k)]


def _kfold_generator(records, k, key="pose_id", seed=0):
    """A typical mistake: a generator of pairs, not a list (it can be read only once)."""
    groups = sorted({r[key] for r in records})
    if not 2 <= k <= len(groups):
        raise ValueError(f"k must be in 2..n_groups, got {k}")
    order = np.random.default_rng(seed).permutation(len(groups))
    fold_of = {groups[g]: i for i, chunk in enumerate(np.array_split(order, k)) for g in chunk}
    return (([r for r in records if fold_of[r[key]] != i],
             [r for r in records if fold_of[r[key]] == i]) for i in range(k))


def _folds(out, k, what):
    if not isinstance(out, (list, tuple)):
        raise Wrong(f"{what} must return a list of {k} (train, val) pairs, got "
                    f"{type(out).__name__}" + (": an iterator (a generator, map, zip) can be read "
                                               "only once and has no len(); build the list"
                                               if isinstance(out, Iterator) else ""))
    try:
        pairs = [tuple(p) for p in out]
    except TypeError as err:
        raise Wrong(f"{what} must return a list of {k} (train, val) pairs, got "
                    f"{type(out).__name__}") from err
    if len(pairs) != k:
        raise Wrong(f"{what} must return k = {k} (train, val) pairs, got {len(pairs)}")
    for i, p in enumerate(pairs):
        if len(p) != 2:
            raise Wrong(f"{what}: pair {i} must be (train, val), got {len(p)} items")
    return [_parts(p, 2, f"{what}, pair {i}") for i, p in enumerate(pairs)]


@exercise("02.4", "k-fold cross-validation by groups", transfer=True,
          nudge="it is 02.1 with k equal parts: shuffle the sorted distinct keys once, cut them "
                "into k chunks whose sizes differ by at most one, and build pair i from chunk i "
                "(val) and every other chunk (train).",
          hint="groups = sorted distinct keys; if not 2 <= k <= len(groups): raise ValueError; "
               "order = np.random.default_rng(seed).permutation(len(groups)); fold_of = {groups[g]:"
               " i for i, chunk in enumerate(np.array_split(order, k)) for g in chunk}; pair i = "
               "([r for r in records if fold_of[r[key]] != i], [r ... == i]).",
          wrong=[_kfold_per_record, _kfold_remainder_last, _kfold_train_is_all, _kfold_no_check,
                 _kfold_generator])
def _(grouped_kfold):
    small = _records(6, seed=4)
    for k in (1, 7):
        what = f"grouped_kfold(records of 6 groups, k={k})"
        try:
            out = grouped_kfold(small, k, key="pose_id", seed=0)
        except ValueError:
            pass
        except NotImplementedError:
            raise
        except Exception as err:  # noqa: BLE001 - the learner's code may raise anything
            raise Wrong(f"{what} raised {type(err).__name__}: {err}; raise ValueError with a "
                        "message instead (k must be at least 2 and at most the number of groups)"
                        ) from err
        else:
            _folds(out, k, what)  # a generator function raises only once it is read
            raise Wrong(f"{what} returned folds; it must raise ValueError (k must be at least 2 "
                        "and at most the number of groups, or a fold is empty or trains on "
                        "nothing)")
    records = _records(103, seed=5)
    # one big group (40 records more): folds balanced by records would differ in groups
    skewed = records + [dict(records[0], version=10 + v, id=len(records) + v) for v in range(40)]
    big = sum(r["pose_id"] == records[0]["pose_id"] for r in skewed)
    for k, key, recs in ((5, "pose_id", records), (3, "pose_id", records),
                         (4, "subject", records), (4, "pose_id", skewed)):
        what = (f"grouped_kfold(records, k={k}, key={key!r})" if recs is records else
                f"grouped_kfold(records with one group of {big} records, k={k})")
        folds = _folds(_call(grouped_kfold, what, recs, k, key=key, seed=0), k, what)
        n_groups = len({r[key] for r in recs})
        val_ids = []
        sizes = []
        for i, (train, val) in enumerate(folds):
            _no_loss_no_leak([train, val], recs, key, f"{what}, pair {i} (train, val)")
            val_ids += [r["id"] for r in val]
            sizes.append(len({r[key] for r in val}))
        if sorted(val_ids) != list(range(len(recs))):
            twice = len(val_ids) - len(set(val_ids))
            raise Wrong(f"{what}: every record must be in exactly one validation fold; "
                        + (f"{twice} records are in two or more" if twice else
                           f"{len(recs) - len(set(val_ids))} are in none"))
        if max(sizes) - min(sizes) > 1:
            raise Wrong(f"{what} with {n_groups} groups: the validation folds hold {sizes} "
                        "groups; their sizes may differ by at most one group")
    a = _folds(grouped_kfold(records, 5, key="pose_id", seed=1), 5, "seed=1")
    b = _folds(grouped_kfold(records, 5, key="pose_id", seed=1), 5, "seed=1")
    c = _folds(grouped_kfold(records, 5, key="pose_id", seed=2), 5, "seed=2")
    ids = [[sorted(r["id"] for r in val) for _, val in s] for s in (a, b, c)]
    if ids[0] != ids[1]:
        raise Wrong("two calls with the same seed gave different folds: shuffle with "
                    "np.random.default_rng(seed)")
    if ids[0] == ids[2]:
        raise Wrong("seeds 1 and 2 gave the same folds: shuffle the groups with the seed")
    d = _folds(grouped_kfold(records[::-1], 5, key="pose_id", seed=1), 5, "reversed records")
    if [sorted(r["id"] for r in val) for _, val in d] != ids[0]:
        raise Wrong("the same records in reverse order (same seed) gave other folds: the folds "
                    "must depend on the groups and the seed only (sort the distinct keys first)")
    return ("Each record is validated exactly once, no group is on both sides of a pair, fold "
            "sizes differ by at most one group, and bad k is refused.")
