"""Records: save, load, relative paths and validation errors that name the record."""

import json
import math
import multiprocessing
import shutil

import pytest

from handpose_utils import load_freihand, load_records, save_records
from handpose_utils.records import RecordError


def test_round_trip_with_relative_paths(tmp_path, synthetic_root):
    data = tmp_path / "data"
    shutil.copytree(synthetic_root, data / "ds")
    recs = load_freihand(data / "ds")
    path = save_records(recs, data / "records" / "train.json")
    raw = json.load(open(path))
    assert raw[0]["image_path"] == "../ds/training/rgb/00000000.jpg"
    back = load_records(path)
    assert back[5]["keypoints"] == recs[5]["keypoints"] and back[5]["image_path"] == recs[5]["image_path"]
    # Move the whole data folder: the records still resolve.
    shutil.move(str(data), str(tmp_path / "moved"))
    moved = load_records(tmp_path / "moved" / "records" / "train.json")
    assert moved[0]["image_path"].startswith(str(tmp_path / "moved"))


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: r.update(keypoints=r["keypoints"][:40]), r"record 1 .*40 values, expected 42"),
        (lambda r: r["keypoints"].__setitem__(7, math.nan), r"record 1 .*position\(s\) \[7\].*NaN"),
        (lambda r: r.pop("keypoints"), r"record 1: missing key"),
        (lambda r: r.update(image_path="nope.jpg"), r"record 1 .*image file not found"),
        (lambda r: r.update(image_path=7), r"record 1: 'image_path' must be a file path.*7 \(int\)"),
        (lambda r: r.update(visible=[1] * 20), r"record 1 .*'visible' must be a list of 21 flags, got 20 flags"),
        # strings are truthy: ["0"] * 21 would count every joint as visible
        (lambda r: r.update(visible=["0"] * 21), r"record 1 .*'visible'.*position 0.*'0' \(str\)"),
        (lambda r: r["visible"].__setitem__(4, 2), r"record 1 .*'visible'.*position 4.*2 \(int\)"),
        (lambda r: r["visible"].__setitem__(3, 0.5), r"record 1 .*'visible'.*0.5 \(float\)"),
        (lambda r: r.update(visible="1" * 21), r"record 1 .*'visible' must be a list"),
        (lambda r: r.update(width="64"), r"record 1 .*'width' is '64' \(str\), not a positive integer"),
        (lambda r: r.update(height=0), r"record 1 .*'height' is 0 \(int\), not a positive integer"),
        (lambda r: r.update(width=224.0), r"record 1 .*'width' is 224.0 \(float\), not a positive"),
        (lambda r: r.update(height=True), r"record 1 .*'height' is True \(bool\), not a positive integer"),
        (lambda r: r.update(xyz=r["xyz"][:20]), r"record 1 .*'xyz' .*20 joints.*21 x 3"),
        (lambda r: r["xyz"][5].pop(), r"record 1 .*'xyz' joint 5 has 2 values.*21 x 3"),
        (lambda r: r["xyz"][2].__setitem__(1, math.nan), r"record 1 .*'xyz' joint 2 .*NaN"),
        (lambda r: r["xyz"][2].__setitem__(1, "0.1"), r"record 1 .*'xyz' joint 2 .*'0.1' \(str\)"),
        (lambda r: r.update(xyz=None), r"record 1 .*'xyz' .*None"),
        (lambda r: r["keypoints"].__setitem__(3, "12.5"), r"record 1 .*'keypoints'.*position 3.*'12.5' \(str\)"),
        (lambda r: r["keypoints"].__setitem__(0, math.inf), r"record 1 .*position\(s\) \[0\].*infinite"),
        # MediaPipe's convention, taught in notebook 04, in a record of a 224 x 224 image
        (lambda r: r.update(keypoints=[v / 224 for v in r["keypoints"]]),
         r"record 1 .*within \[-0.5, 1.5\] in a 224x224 image: normalised coordinates\? .*multiply x "
         "by the width"),
        (lambda r: r["keypoints"].__setitem__(0, 5224.0),
         r"record 1 .*x .* to 5224.*more than one image size outside the 224x224 image: another "
         "resolution"),
    ],
)
def test_validation_names_the_record(tmp_path, synthetic_root, mutate, message):
    recs = load_freihand(synthetic_root)[:3]
    path = save_records(recs, tmp_path / "r.json")
    raw = json.load(open(path))
    mutate(raw[1])
    path.write_text(json.dumps(raw, allow_nan=True))
    with pytest.raises(RecordError, match=message):
        load_records(path)


def test_missing_file_and_bad_json(tmp_path):
    with pytest.raises(FileNotFoundError, match="notebook 01"):
        load_records(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(RecordError, match="not valid JSON"):
        load_records(tmp_path / "bad.json")


def test_save_is_atomic(tmp_path, synthetic_root):
    path = save_records(load_freihand(synthetic_root)[:2], tmp_path / "r.json")
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def _save_many(records, path, times):
    for _ in range(times):
        save_records(records, path)


def test_two_processes_saving_one_file_both_succeed(tmp_path):
    """Two writers of one records file (two notebooks preparing the same split): each save
    goes through its own temporary, so both succeed and the file is always whole JSON."""
    records = [{"image_path": str(tmp_path / f"{i:05d}.jpg"), "keypoints": [i + 0.5] * 42,
                "pose_id": i} for i in range(3000)]
    path = tmp_path / "records" / "train.json"
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    procs = [ctx.Process(target=_save_many, args=(records, path, 20)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    assert len(json.loads(path.read_text())) == 3000
    assert [p.name for p in path.parent.iterdir()] == ["train.json"]  # no temporary left


def test_well_formed_optional_fields_pass(tmp_path, synthetic_root):
    recs = load_freihand(synthetic_root)[:2]
    recs[0]["visible"] = [True] * 20 + [False]  # bools are fine, and so are 0/1 ints
    recs[1].pop("xyz")  # optional fields may be absent
    path = save_records(recs, tmp_path / "r.json")
    back = load_records(path)
    assert back[0]["visible"][-1] is False and "xyz" not in back[1]


def test_visible_array_refuses_flags_that_are_not_booleans():
    """Records handed straight to the data pipeline skip load_records: the flags are checked
    where they are turned into booleans too."""
    from handpose_utils.records import visible_array

    rec = {"image_path": "a.jpg", "keypoints": [0.0] * 42, "visible": [1] * 20 + [0]}
    assert visible_array(rec).tolist() == [True] * 20 + [False]
    rec["visible"] = ["0"] * 21
    with pytest.raises(RecordError, match=r"a.jpg.*'visible'.*'0'"):
        visible_array(rec)
    rec["visible"] = [2] * 21
    with pytest.raises(RecordError, match=r"a.jpg.*'visible'.*2"):
        visible_array(rec)


def test_keypoints_partly_outside_or_unlabelled_pass(tmp_path, synthetic_root):
    """A hand cut by the image edge keeps keypoints a little outside it; COCO puts unlabelled
    joints at (0, 0) and RHD's hidden hand may lie anywhere: only visible keypoints count."""
    recs = load_freihand(synthetic_root)[:3]
    assert (recs[0]["width"], recs[0]["height"]) == (224, 224)
    shifted = enumerate(recs[0]["keypoints"])
    recs[0]["keypoints"] = [v - 150 if i % 2 == 0 else v for i, v in shifted]
    assert min(recs[0]["keypoints"][0::2]) < -20  # several fingers beyond the left edge
    recs[1]["keypoints"][:4] = [0.0, 0.0, 0.0, 0.0]
    recs[1]["visible"] = [0, 0] + [1] * 19
    recs[2]["keypoints"][:2] = [5000.0, -3000.0]
    recs[2]["visible"] = [0] + [1] * 20
    load_records(save_records(recs, tmp_path / "r.json"))
