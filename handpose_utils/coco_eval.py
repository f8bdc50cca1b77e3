"""COCO keypoint evaluation: OKS, AP and AR through ``pycocotools``, and COCO results files.

**OKS** (:func:`object_keypoint_similarity`) is for keypoints what IoU is for boxes. **AP**
averages precision over the OKS thresholds 0.50, 0.55, ..., 0.95 (AP50 and AP75 at one; APm and
APl by size), **AR** the recall. This course predicts inside the *ground-truth* boxes (no missed
or invented people), so expect higher numbers than a detector pipeline gives."""

from __future__ import annotations

import contextlib
import copy
import io
import math
import os
from pathlib import Path

import numpy as np
import torch

from .datasets.freihand import read_dataset_json
from .safefiles import write_json
from .skeletons import COCO_OKS_SIGMAS

# COCOeval.summarize() order for iouType="keypoints".
STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def load_coco_gt(ann_file):
    """``ann_file`` (a path; a COCO object as is) as a ``pycocotools`` COCO, loaded quietly."""
    from pycocotools.coco import COCO  # a course requirement; it imports matplotlib: on first use
    if isinstance(ann_file, COCO):
        return ann_file
    path = Path(ann_file)
    if not path.is_file():
        raise FileNotFoundError(f"COCO annotation file not found: {path}")
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def evaluate_coco_keypoints(ann_file, results, image_ids=None, sigmas=None,
                            return_eval: bool = False):
    """OKS-based AP and AR of keypoint ``results`` (result dicts, or a results JSON's path)
    against ``ann_file`` on the images ``image_ids`` (default: all; people without a prediction
    are misses): the :data:`STAT_NAMES` in 0..1, NaN where undefined (APl without a large
    person); with ``return_eval`` also the ``COCOeval``. Bad or empty results raise a
    ``ValueError`` that says what is wrong (pycocotools fails with an ``IndexError``)."""
    from pycocotools.cocoeval import COCOeval
    source = "results"
    if isinstance(results, (str, os.PathLike)):
        source = str(results)
        results = read_dataset_json(Path(source), "COCO results file")
    if not isinstance(results, list):
        raise TypeError(f"{source}: COCO results are a list of result dicts (a results file: a "
                        f"JSON list), got {type(results).__name__}")
    if not results:
        raise ValueError(
            f"{source} is empty: there are no predictions to evaluate (pycocotools itself would "
            "fail with 'IndexError: list index out of range'). Check that the model produced "
            "predictions and that they were collected, e.g. that the validation loader is not "
            "empty.")
    if bad := [i for i, r in enumerate(results) if not isinstance(r, dict) or "image_id" not in r]:
        raise ValueError(f"{source}: result {bad[0]} is not a COCO keypoint result (needs "
                         "image_id, category_id, keypoints [x, y, v] x K and score)")
    gt = load_coco_gt(ann_file)
    if missing := sorted({r["image_id"] for r in results} - set(gt.getImgIds())):
        raise ValueError(
            f"{source}: {len(missing)} image_id(s) are not in the ground truth {ann_file}, e.g. "
            f"{missing[:5]}. Predictions must use the image ids of the annotation file.")
    n_kp = len(gt.loadCats(gt.getCatIds())[0].get("keypoints", [])) or 17
    sizes = [len(r.get("keypoints", ())) for r in results]
    if wrong := [i for i, n in enumerate(sizes) if n != 3 * n_kp]:
        raise ValueError(f"{source}: result {wrong[0]} has {sizes[wrong[0]]} keypoint values; "
                         f"the ground truth has {n_kp} keypoints ({3 * n_kp}).")
    with contextlib.redirect_stdout(io.StringIO()):
        # loadRes adds fields to the dicts it gets: give it copies.
        dt = gt.loadRes(copy.deepcopy(results))
        ev = COCOeval(gt, dt, iouType="keypoints")
        if sigmas is not None:
            ev.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=float)
        if image_ids is not None:
            image_ids = sorted({int(i) for i in image_ids})
            if unknown := set(image_ids) - set(gt.getImgIds()):
                raise ValueError(f"image_ids {sorted(unknown)[:5]} are not in {ann_file}")
            ev.params.imgIds = image_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = {name: (float(v) if v >= 0 else math.nan) for name, v in zip(STAT_NAMES, ev.stats)}
    return (stats, ev) if return_eval else stats


def keypoints_to_coco_results(keypoints, scores, image_ids,
                              score_threshold: float = 0.2) -> list[dict]:
    """COCO result dicts of ``N`` people: ``keypoints`` ``(N, J, 2)`` in image pixels, ``scores``
    ``(N, J)`` (heatmap maxima). A person's score, its rank for AP, is SimpleBaseline's: the mean
    of its joint scores above ``score_threshold`` (all if none is) times its box's (GT box: 1)."""
    kp, sc = (np.asarray(torch.as_tensor(a).cpu(), float) for a in (keypoints, scores))
    out = []
    for p, s, i in zip(kp, sc, torch.as_tensor(image_ids).cpu().numpy()):
        keep = s > score_threshold
        person = float(s[keep].mean() if keep.any() else s.mean())
        out.append({"image_id": int(i), "category_id": 1,
                    "keypoints": [round(float(v), 3) for v in np.c_[p, s].reshape(-1)],
                    "score": round(person, 5)})
    return out


def write_coco_results(results: list[dict], path) -> Path:
    """Write ``results`` as a COCO results JSON, atomically."""
    return write_json(path, results)


def heatmaps_to_coco_results(codec, heatmaps, meta, mode: str | None = None,
                             score_threshold: float = 0.2) -> list[dict]:
    """COCO results of crops' ``heatmaps``, decoded by ``codec`` (or ``mode``), back-projected."""
    from .topdown import back_project
    xy, scores = codec.decode(heatmaps, mode)
    pts = back_project(xy.cpu().numpy(), meta["center"].cpu().numpy(),
                       meta["size"].cpu().numpy(), codec.input_size)
    return keypoints_to_coco_results(pts, scores.cpu(), meta["image_id"].cpu().numpy(),
                                     score_threshold)


def ground_truth_results(ann_file, image_ids=None, min_keypoints: int = 1) -> list[dict]:
    """The ground truth as predictions (score 1; v = 0 joints at (0, 0)): AP must be 1.0."""
    gt = load_coco_gt(ann_file)
    ids = gt.getImgIds() if image_ids is None else [int(i) for i in image_ids]
    return [{"image_id": a["image_id"], "category_id": a["category_id"],
             "keypoints": list(a["keypoints"]), "score": 1.0}
            for a in gt.loadAnns(gt.getAnnIds(imgIds=ids, iscrowd=False))
            if a.get("num_keypoints", 0) >= min_keypoints]


def object_keypoint_similarity(pred, gt, area: float, sigmas=COCO_OKS_SIGMAS,
                               bbox=None) -> float:
    """OKS between one predicted person ``(J, 2)`` and one ground-truth person ``(J, 3)`` (x, y,
    v) of segmented ``area``, exactly as pycocotools' ``COCOeval.computeOks`` computes it.

    With labelled joints (v > 0), the mean of ``exp(-d^2 / (2 area (2 sigma)^2))`` over them.
    Without any, pycocotools uses the annotation box ``bbox`` ``[x, y, w, h]`` instead: ``d`` is
    each predicted joint's distance to the box enlarged to ``[x - w, x + 2w] x [y - h, y + 2h]``
    (0 inside it), averaged over **all** joints. Such a person needs ``bbox``; without it a
    ``ValueError`` says so."""
    pred = np.asarray(pred, float).reshape(-1, 2)
    g = np.asarray(gt, float).reshape(-1, 3)
    labelled = g[:, 2] > 0
    if labelled.any():
        d2 = ((pred - g[:, :2]) ** 2).sum(-1)
    elif bbox is None:
        raise ValueError(
            "object_keypoint_similarity: the ground-truth person has no labelled joint (every "
            "v is 0), so pycocotools measures the distance to its box instead; pass the "
            "annotation's bbox=[x, y, w, h]")
    else:  # every joint scored, by its distance to the enlarged box
        x, y, w, h = (float(v) for v in bbox)
        dx = np.maximum(0.0, (x - w) - pred[:, 0]) + np.maximum(0.0, pred[:, 0] - (x + 2 * w))
        dy = np.maximum(0.0, (y - h) - pred[:, 1]) + np.maximum(0.0, pred[:, 1] - (y + 2 * h))
        d2, labelled = dx**2 + dy**2, np.ones_like(labelled)
    e = d2 / (2 * np.asarray(sigmas, float)) ** 2 / (area + np.spacing(1)) / 2
    return float(np.exp(-e[labelled]).mean())


def per_person_oks(records, results, sigmas=COCO_OKS_SIGMAS, oks=None) -> np.ndarray:
    """OKS of each prediction ``results[i]`` against the person ``records[i]`` it was predicted
    for (without labelled joints: against its ``bbox``). ``oks``: a notebook's own ``(pred, gt,
    area, sigmas)`` function for people with labelled joints."""
    if len(records) != len(results):
        raise ValueError(f"{len(records)} records but {len(results)} results: pass the results "
                         "of the same loader, in order")
    out = []
    for rec, res in zip(records, results):
        if int(rec["image_id"]) != int(res["image_id"]):
            raise ValueError(f"record of image {rec['image_id']} paired with a result of image "
                             f"{res['image_id']}: the lists are not in the same order")
        gt = np.c_[np.asarray(rec["keypoints"], float).reshape(-1, 2), rec["visible"]]
        pred = np.asarray(res["keypoints"], float).reshape(-1, 3)[:, :2]
        if oks is not None and (gt[:, 2] > 0).any():
            out.append(float(oks(pred, gt, rec["area"], sigmas)))
        else:
            out.append(object_keypoint_similarity(pred, gt, rec["area"], sigmas, rec.get("bbox")))
    return np.asarray(out)


def format_ap_table(rows: dict[str, dict], keys=("AP", "AP50", "AP75", "APm", "APl", "AR")) -> str:
    """A fixed-width text table: one row per named evaluation, one column per statistic; one
    that COCO could not compute (NaN, or pycocotools' -1) shows as "-", explained underneath."""
    def defined(v) -> bool:
        return v is not None and math.isfinite(v) and v >= 0

    name_w = max([len(n) for n in rows] + [10])
    lines = [" " * name_w + "".join(f"{k:>8s}" for k in keys)]
    for name, stats in rows.items():
        lines.append(f"{name:<{name_w}s}" + "".join(
            f"{stats[k]:8.3f}" if defined(stats.get(k)) else f"{'-':>8s}" for k in keys))
    if missing := [k for k in keys if not all(defined(s.get(k)) for s in rows.values())]:
        lines.append(f"- : not defined here ({', '.join(missing)}: no person of that size, or "
                     "no statistic)")
    return "\n".join(lines)


class CocoKeypointMeter:
    """The engine's metric for top-down heatmaps: the ``keys`` among :data:`STAT_NAMES` on the
    images seen (or ``image_ids``) every epoch; :attr:`results` keeps the last epoch's results."""

    log_items = [("AP", "AP", "{:.3f}"), ("AP50", "AP50", "{:.3f}"), ("AR", "AR", "{:.3f}")]

    def __init__(self, ann_file, codec, image_ids=None, score_threshold: float = 0.2,
                 keys=("AP", "AP50", "AP75", "AR")):
        if unknown := set(keys) - set(STAT_NAMES):
            raise ValueError(f"unknown statistics {sorted(unknown)}; choose from {STAT_NAMES}")
        self.gt, self.ann_file, self.codec = load_coco_gt(ann_file), ann_file, codec
        self.image_ids, self.score_threshold, self.keys = image_ids, score_threshold, tuple(keys)
        self.reset()

    def reset(self) -> None:
        self.results: list[dict] = []
        self._seen: set[int] = set()

    def update(self, outputs, targets, extras) -> None:
        self._seen.update(int(i) for i in extras["image_id"].cpu())
        self.results += heatmaps_to_coco_results(self.codec, outputs, extras,
                                                 score_threshold=self.score_threshold)

    def compute(self) -> dict:
        ids = self.image_ids if self.image_ids is not None else sorted(self._seen)
        stats = evaluate_coco_keypoints(self.gt, self.results, image_ids=ids)
        return {k: stats[k] for k in self.keys}


@torch.no_grad()
def predict_coco_results(model, loader, codec, modes=("quarter",), flip_test: bool = True,
                         device=None, amp=None, score_threshold: float = 0.2,
                         progress: bool = True) -> dict:
    """COCO results of every person of ``loader`` (a ``TopDownDataset`` loader without
    augmentation) for each decoding ``mode``, plain and (with ``flip_test``) averaged with the
    mirrored crops' heatmaps (:meth:`HeatmapCodec.flip_average`): ``{(mode, flipped): results}``,
    all from one pass over the crops."""
    from . import env
    from .topdown import prepare_topdown_batch
    device = torch.device(device) if device is not None else env.pick_device()
    amp = amp if amp is not None else env.amp_settings(device)
    was_training = model.training
    model.eval()
    out = {(m, f): [] for m in modes for f in ((False, True) if flip_test else (False,))}
    try:
        for batch in env.progress_bar(loader, progress, desc="predict", leave=False):
            images, _, meta = prepare_topdown_batch(batch, device, False)
            with torch.autocast(device.type, dtype=amp.dtype, enabled=amp.enabled):
                plain = model(images).float()
                flipped = model(images.flip(-1)).float() if flip_test else None
            heatmaps = {False: plain,
                        True: codec.flip_average(plain, flipped) if flip_test else None}
            for (mode, flip), results in out.items():
                results += heatmaps_to_coco_results(codec, heatmaps[flip], meta, mode,
                                                    score_threshold)
    finally:
        model.train(was_training)
    return out
