"""Generated from notebooks/02_dataset_splitting.ipynb by `python -m handpose_utils.export`.

Edit the notebook's `#@save splits` cells, not this file: the tests check that the two agree."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


# --- from notebooks/02_dataset_splitting.ipynb ---
def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    try:
        f = np.asarray(fractions, dtype=float)
    except (TypeError, ValueError):
        f = np.array([np.nan])
    if f.ndim != 1 or len(f) < 2 or not np.isfinite(f).all() or np.any(f < 0) \
            or abs(f.sum() - 1) > 1e-6:
        raise ValueError(
            f"fractions must be two or more finite numbers >= 0 that sum to 1, got "
            f"{tuple(fractions) if np.iterable(fractions) else fractions!r}; "
            "e.g. (0.8, 0.1, 0.1) for train, val and test."
        )
    return f


def _counts(n: int, fractions: np.ndarray, what: str) -> np.ndarray:
    """Split n items by fractions: every non-zero fraction gets at least one item, and the counts
    add up to n. Raises when n is too small for that: an empty part that was asked for would
    otherwise pass for a split and fail much later (an empty validation set, a NaN metric)."""
    wanted = int(np.count_nonzero(fractions))
    if n < wanted:
        raise ValueError(
            f"{n} {what} cannot fill {wanted} splits with non-zero fractions "
            f"{tuple(float(v) for v in fractions)}: each needs at least one. Use more data, or "
            "set a fraction to 0 to leave that split empty."
        )
    counts = np.floor(fractions * n).astype(int)
    for i in np.argsort(-(fractions * n - counts)):  # largest remainders first
        if counts.sum() >= n:
            break
        counts[i] += 1
    for i in range(len(counts)):
        if fractions[i] > 0 and counts[i] == 0:
            j = int(np.argmax(counts))
            counts[j] -= 1
            counts[i] += 1
    return counts


def random_split(
    records: Sequence[dict], fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> tuple[list[dict], ...]:
    """Split per record, ignoring groups: leaky when records repeat a group (FreiHAND's four
    versions of each pose)."""
    f = _check_fractions(fractions)
    order = np.random.default_rng(seed).permutation(len(records))
    bounds = np.cumsum(_counts(len(records), f, "records"))[:-1]
    return tuple([records[i] for i in part] for part in np.split(order, bounds))


# --- from notebooks/02_dataset_splitting.ipynb ---
def _check_key_types(labelled_keys, key: str) -> None:
    """Raise when two keys differ only in type, such as pose 0 and pose "0": as Python values
    they are two groups, so one pose would land in two splits (a leak). Records from two
    sources, or saved by different code, are the usual cause. ``labelled_keys`` yields
    ``(label, key)``, the label naming the record in the message."""
    seen: dict[str, tuple] = {}
    for label, k in labelled_keys:
        text = str(k)
        if text in seen and seen[text][1] != k:
            first, other = seen[text]
            raise ValueError(
                f"{first} and {label} have '{key}' values that differ only in type: {other!r} "
                f"({type(other).__name__}) and {k!r} ({type(k).__name__}). As keys they would "
                "be two groups, so one group could end up in two splits. Convert "
                f"'{key}' to one type in all records first."
            )
        seen.setdefault(text, (label, k))


def count_pose_leak(train: Sequence[dict], other: Sequence[dict], key: str = "pose_id") -> dict:
    """How many groups (poses) of ``other`` also appear in ``train``.

    Returns ``groups`` (distinct groups in ``other``), ``leaked_groups`` (of those, how many are
    in train), ``leaked_fraction`` and ``leaked_records`` (records of ``other`` whose group is in
    train).
    """
    train_keys = {r[key] for r in train}
    other_keys = [r[key] for r in other]
    _check_key_types([(f"train record {i}", r[key]) for i, r in enumerate(train)]
                     + [(f"other record {i}", k) for i, k in enumerate(other_keys)], key)
    distinct = set(other_keys)
    leaked = distinct & train_keys
    return {
        "groups": len(distinct),
        "leaked_groups": len(leaked),
        "leaked_fraction": len(leaked) / len(distinct) if distinct else 0.0,
        "leaked_records": sum(k in train_keys for k in other_keys),
    }


def pose_leak_fraction(train: Sequence[dict], other: Sequence[dict], key: str = "pose_id") -> float:
    """The fraction of the distinct groups of ``other`` that also appear in ``train``."""
    return count_pose_leak(train, other, key)["leaked_fraction"]


# --- from notebooks/02_dataset_splitting.ipynb ---
def grouped_split(
    records: Sequence[dict],
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    key: str = "pose_id",
    seed: int = 0,
) -> tuple[list[dict], ...]:
    """Split so that all records sharing ``record[key]`` land in the same part.

    Groups (not records) are shuffled with ``seed`` and dealt out by ``fractions``; a part's
    share of records therefore matches ``fractions`` only as closely as group sizes allow.
    """
    f = _check_fractions(fractions)
    try:
        keys = [r[key] for r in records]
    except KeyError as err:
        raise KeyError(
            f"grouped_split needs '{key}' in every record; records from load_freihand have "
            "'pose_id'. Pass key=... to group by another field."
        ) from err
    _check_key_types(((f"record {i}", k) for i, k in enumerate(keys)), key)
    groups = sorted(set(keys), key=lambda k: (str(type(k)), k))  # input order must not matter
    order = np.random.default_rng(seed).permutation(len(groups))
    bounds = np.cumsum(_counts(len(groups), f, f"groups (distinct '{key}' values)"))[:-1]
    part_of = {}
    for part, idx in enumerate(np.split(order, bounds)):
        for i in idx:
            part_of[groups[i]] = part
    parts: tuple[list[dict], ...] = tuple([] for _ in f)
    for rec, k in zip(records, keys):
        parts[part_of[k]].append(rec)
    return parts
