"""COCO keypoint evaluation on the real val2017 sample: AP of the ground truth, of perturbed
predictions, results files, the empty-list message and OKS itself."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

import handpose_utils as hp
from handpose_utils.coco_eval import (
    STAT_NAMES,
    format_ap_table,
    ground_truth_results,
    keypoints_to_coco_results,
    load_coco_gt,
    object_keypoint_similarity,
    per_person_oks,
    write_coco_results,
)

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def ann_file(realdata):
    return realdata / "coco" / "annotations" / "person_keypoints_val2017.json"


def _perturbed(results, sigma_px, seed=0):
    rng = np.random.default_rng(seed)
    out = copy.deepcopy(results)
    for r in out:
        kp = np.asarray(r["keypoints"], float).reshape(-1, 3)
        kp[:, :2] += rng.normal(0, sigma_px, (len(kp), 2))
        r["keypoints"] = kp.reshape(-1).tolist()
    return out


def test_ground_truth_as_prediction_gives_ap_one(ann_file):
    gt = ground_truth_results(ann_file)
    assert len(gt) == 12  # 14 annotations, 2 of them without keypoints
    stats = hp.coco_eval.evaluate_coco_keypoints(ann_file, gt)
    assert set(STAT_NAMES) <= set(stats)
    for key in ("AP", "AP50", "AP75", "APm", "APl", "AR"):
        assert stats[key] == pytest.approx(1.0)


def test_perturbed_predictions_score_lower_and_monotonically(ann_file):
    gt = ground_truth_results(ann_file)
    aps = [hp.coco_eval.evaluate_coco_keypoints(ann_file, _perturbed(gt, s))["AP"] for s in (1, 4, 12)]
    assert aps[0] < 1.0
    assert aps[0] > aps[1] > aps[2]
    # A uniform shift of every joint costs AP too.
    shifted = copy.deepcopy(gt)
    for r in shifted:
        r["keypoints"] = [v + 8 if i % 3 == 0 else v for i, v in enumerate(r["keypoints"])]
    assert hp.coco_eval.evaluate_coco_keypoints(ann_file, shifted)["AP75"] < 1.0


def test_missing_people_lower_recall(ann_file):
    gt = ground_truth_results(ann_file)
    stats = hp.coco_eval.evaluate_coco_keypoints(ann_file, gt[: len(gt) // 2])
    assert stats["AR"] < 0.75
    # Restricted to the images that have predictions, nobody is missing.
    ids = {r["image_id"] for r in gt[:3]}
    part = [r for r in gt if r["image_id"] in ids]
    assert hp.coco_eval.evaluate_coco_keypoints(ann_file, part, image_ids=ids)["AR"] == pytest.approx(1.0)


def test_empty_results_give_a_clear_message(ann_file):
    with pytest.raises(ValueError, match="empty: there are no predictions") as info:
        hp.coco_eval.evaluate_coco_keypoints(ann_file, [])
    assert "IndexError" in str(info.value)


def test_results_file_round_trip(ann_file, tmp_path):
    gt = _perturbed(ground_truth_results(ann_file), 3)
    path = write_coco_results(gt, tmp_path / "sub" / "results.json")
    assert json.loads(path.read_text()) == gt
    from_list = hp.coco_eval.evaluate_coco_keypoints(ann_file, gt)
    from_file = hp.coco_eval.evaluate_coco_keypoints(ann_file, path)
    assert from_file == from_list
    assert gt == json.loads(path.read_text())  # evaluation did not modify the caller's dicts
    empty = write_coco_results([], tmp_path / "empty.json")
    with pytest.raises(ValueError, match="empty.json is empty"):
        hp.coco_eval.evaluate_coco_keypoints(ann_file, empty)


def test_bad_results_name_the_problem(ann_file, tmp_path):
    gt = ground_truth_results(ann_file)
    wrong_id = copy.deepcopy(gt[:1])
    wrong_id[0]["image_id"] = 123456789
    with pytest.raises(ValueError, match="not in the ground truth"):
        hp.coco_eval.evaluate_coco_keypoints(ann_file, wrong_id)
    short = copy.deepcopy(gt[:1])
    short[0]["keypoints"] = short[0]["keypoints"][:42]
    with pytest.raises(ValueError, match="has 42 keypoint values"):
        hp.coco_eval.evaluate_coco_keypoints(ann_file, short)
    with pytest.raises(FileNotFoundError):
        hp.coco_eval.evaluate_coco_keypoints(ann_file, tmp_path / "nope.json")


def test_oks_matches_pycocotools(ann_file):
    coco = load_coco_gt(ann_file)
    gt = ground_truth_results(ann_file)
    preds = _perturbed(gt, 6, seed=3)
    _, ev = hp.coco_eval.evaluate_coco_keypoints(ann_file, preds, return_eval=True)
    anns = {a["id"]: a for a in coco.loadAnns(coco.getAnnIds())}
    checked = unlabelled = 0
    for (image_id, _cat), ious in ev.ious.items():
        if len(ious) == 0:
            continue
        dts = ev._dts[image_id, 1]
        gts = ev._gts[image_id, 1]
        for i, d in enumerate(dts):
            for j, g in enumerate(gts):
                a = anns[g["id"]]
                # Without labelled joints (ignored in AP) pycocotools measures the distance to
                # the enlarged box: the bbox is needed then.
                ours = object_keypoint_similarity(np.asarray(d["keypoints"]).reshape(-1, 3)[:, :2],
                                                  a["keypoints"], a["area"], bbox=a["bbox"])
                assert ours == pytest.approx(ious[i, j], abs=1e-9)
                checked += 1
                unlabelled += a["num_keypoints"] == 0
    assert checked >= 12 and unlabelled >= 1


def test_keypoints_to_results_and_person_score():
    kp = np.zeros((2, 17, 2))
    scores = np.full((2, 17), 0.1)
    scores[0, :4] = 0.9  # four confident joints
    res = keypoints_to_coco_results(kp, scores, [7, 8])
    assert [r["image_id"] for r in res] == [7, 8]
    assert res[0]["score"] == pytest.approx(0.9)  # mean of the joints above 0.2
    assert res[1]["score"] == pytest.approx(0.1)  # none above: the mean of all
    assert len(res[0]["keypoints"]) == 51 and res[0]["category_id"] == 1


def test_per_person_oks_pairs_records_with_results(realdata):
    records = hp.load_coco_keypoints(realdata / "coco", "val")
    results = [{"image_id": r["image_id"], "category_id": 1, "score": 1.0,
                "keypoints": np.c_[np.asarray(r["keypoints"]).reshape(-1, 2), r["visible"]]
                .reshape(-1).tolist()} for r in records]
    assert np.allclose(per_person_oks(records, results), 1.0)
    with pytest.raises(ValueError, match="same order"):
        per_person_oks(records, results[::-1])


def test_ap_table_shows_undefined_statistics_as_a_dash_and_says_why():
    table = format_ap_table({"run": {"AP": 0.5, "APl": float("nan"), "APm": -1.0}})
    assert "0.500" in table and "nan" not in table and "-1.000" not in table
    header, row, note = table.splitlines()
    assert row.split()[1:] == ["0.500", "-", "-", "-", "-", "-"]  # AP, then the missing ones
    assert note.startswith("- :") and "APm, APl" in note
