"""The FreiHAND reader, on generated data and on real FreiHAND samples."""

import json
import shutil

import numpy as np
import pytest

from handpose_utils import load_freihand, read_image
from handpose_utils.camera import project
from handpose_utils.datasets.freihand import DatasetNotFoundError
from handpose_utils.images import ImageReadError, check_images


def test_records_from_generated_data(synthetic_root):
    recs = load_freihand(synthetic_root, "training")
    assert len(recs) == 6 * 4
    keys = {"image_path", "keypoints", "xyz", "K", "pose_id", "version", "visible", "width", "height"}
    assert keys <= set(recs[0])
    for r in recs:
        assert r["image_path"].endswith(f"{r['pose_id'] + 6 * r['version']:08d}.jpg")
        uv = project(np.array(r["xyz"]), np.array(r["K"]))
        np.testing.assert_allclose(np.array(r["keypoints"]).reshape(21, 2), uv, atol=1e-3)
    assert {r["version"] for r in recs} == {0, 1, 2, 3}
    assert recs[0]["source"] == "synthetic-FreiHAND"
    ev = load_freihand(synthetic_root, "evaluation")
    assert len(ev) == 2 and {r["version"] for r in ev} == {0}


def test_version_selection(synthetic_root):
    recs = load_freihand(synthetic_root, versions=[0])
    assert len(recs) == 6 and all(r["version"] == 0 for r in recs)


def test_keypoints_come_from_the_projection_passed_in(synthetic_root):
    """Notebook 01 hands the reader the learner's projection: one pose at a time, (21, 3) and (3, 3)."""
    calls = []

    def one_pose(xyz, K):
        assert np.shape(xyz) == (21, 3) and np.shape(K) == (3, 3)
        calls.append(1)
        return project(xyz, K) + 1.0

    course = load_freihand(synthetic_root, versions=[0])
    theirs = load_freihand(synthetic_root, versions=[0], project=one_pose)
    assert len(calls) == 6
    for a, b in zip(course, theirs):
        np.testing.assert_allclose(np.array(b["keypoints"]), np.array(a["keypoints"]) + 1.0, atol=1e-3)

def test_accepts_parent_folder(tmp_path, synthetic_root):
    parent = tmp_path / "data"
    shutil.copytree(synthetic_root, parent / "FreiHAND_pub_v2")
    assert len(load_freihand(parent)) == 24


def test_missing_dataset_names_the_path(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"nowhere.*make_freihand"):
        load_freihand(tmp_path / "nowhere")


def test_missing_json_and_images(tmp_path, synthetic_root):
    root = tmp_path / "fh"
    shutil.copytree(synthetic_root, root)
    (root / "training_K.json").unlink()
    with pytest.raises(DatasetNotFoundError, match="training_K.json"):
        load_freihand(root)
    shutil.copy(synthetic_root / "training_K.json", root / "training_K.json")
    (root / "training" / "rgb" / f"{6 * 3 + 5:08d}.jpg").unlink()  # last image of version 3
    with pytest.raises(DatasetNotFoundError, match=r"00000023\.jpg.*version 3"):
        load_freihand(root)
    assert len(load_freihand(root, versions=[0, 1])) == 12
    (root / "evaluation_xyz.json").unlink()
    with pytest.raises(DatasetNotFoundError, match="FreiHAND_pub_v2_eval.zip"):
        load_freihand(root, "evaluation")


def test_malformed_annotations(tmp_path, synthetic_root):
    root = tmp_path / "fh"
    shutil.copytree(synthetic_root, root)
    xyz = json.load(open(root / "training_xyz.json"))
    xyz[2][4][2] = -0.5
    json.dump(xyz, open(root / "training_xyz.json", "w"))
    with pytest.raises(ValueError, match=r"pose\(s\) \[2\]"):
        load_freihand(root)
    (root / "training_xyz.json").write_text("[[[1, 2")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_freihand(root)


def test_corrupt_image_is_named_and_skips_are_counted(tmp_path, synthetic_root):
    root = tmp_path / "fh"
    shutil.copytree(synthetic_root, root)
    bad = root / "training" / "rgb" / "00000003.jpg"
    bad.write_bytes(bad.read_bytes()[:200])  # truncated JPEG
    with pytest.raises(ImageReadError, match="00000003.jpg"):
        read_image(bad)
    paths = [r["image_path"] for r in load_freihand(root)]
    with pytest.raises(ImageReadError, match="00000003.jpg"):
        check_images(paths)
    good, report = check_images(paths, skip_bad=True)
    assert report.seen == 24 and report.n_skipped == 1 and len(good) == 23
    assert "00000003.jpg" in str(report)


@pytest.mark.realdata
def test_real_freihand_samples(realdata):
    root = realdata / "freihand" / "FreiHAND_pub_v2"
    expected = json.load(open(realdata / "freihand" / "expected_uv.json"))
    recs = load_freihand(root)
    assert len(recs) == 8 and recs[0]["source"] == "FreiHAND"  # 2 poses x 4 versions
    for r in recs:
        want = np.array(expected[r["pose_id"]])
        np.testing.assert_allclose(np.array(r["keypoints"]).reshape(21, 2), want, atol=0.01)
        assert r["image_path"].endswith(f"{r['pose_id'] + 2 * r['version']:08d}.jpg")
        assert read_image(r["image_path"]).shape == (224, 224, 3)
        assert r["visible"] == [1] * 21  # real FreiHAND labels every joint


def _broken_copy(tmp_path, synthetic_root, name, edit):
    """A copy of the synthetic FreiHAND whose ``name`` JSON is replaced by ``edit(content)``."""
    root = tmp_path / "fh"
    shutil.copytree(synthetic_root, root)
    data = json.loads((root / name).read_text())
    (root / name).write_text(json.dumps(edit(data)))  # json writes NaN as NaN, as it reads it
    return root


def _set(data, index, value):
    data[index] = value
    return data


@pytest.mark.parametrize("bad_K,what", [
    ([[np.nan, 0, 112], [0, 500, 112], [0, 0, 1]], "non-finite"),
    ([[0, 0, 0], [0, 0, 0], [0, 0, 0]], "singular"),
    ([[500, 0, 112], [1000, 0, 224], [0, 0, 1]], "singular"),  # rows 1 and 2 dependent
])
def test_unusable_K_names_the_file_and_pose(tmp_path, synthetic_root, bad_K, what):
    root = _broken_copy(tmp_path, synthetic_root, "training_K.json", lambda K: _set(K, 4, bad_K))
    with pytest.raises(ValueError, match=rf"training_K\.json.*pose\(s\) \[4\].*{what}"):
        load_freihand(root)


def test_ragged_or_wrongly_shaped_xyz_is_named(tmp_path, synthetic_root):
    root = _broken_copy(tmp_path, synthetic_root, "training_xyz.json",
                        lambda xyz: _set(xyz, 2, xyz[2][:20]))  # pose 2 lost a joint
    with pytest.raises(ValueError, match=r"training_xyz\.json.*entry 2 has shape \(20, 3\)"):
        load_freihand(root)
    root = _broken_copy(tmp_path / "b", synthetic_root, "training_xyz.json",
                        lambda xyz: {str(i): p for i, p in enumerate(xyz)})
    with pytest.raises(ValueError, match=r"training_xyz\.json.*JSON list.*got a dict"):
        load_freihand(root)


@pytest.mark.parametrize("name", ["training_scale.json", "training_visibility.json"])
def test_too_short_scale_or_visibility_file_is_named(tmp_path, synthetic_root, name):
    root = _broken_copy(tmp_path, synthetic_root, name, lambda values: values[:-1])
    with pytest.raises(ValueError, match=rf"{name}.*5 entries.*6 poses"):
        load_freihand(root)


@pytest.mark.parametrize("value", [float("nan"), 0.0, -0.02])
def test_non_positive_or_nan_scale_is_rejected(tmp_path, synthetic_root, value):
    root = _broken_copy(tmp_path, synthetic_root, "training_scale.json",
                        lambda scale: _set(scale, 3, value))
    with pytest.raises(ValueError, match=r"training_scale\.json.*pose\(s\) \[3\]"):
        load_freihand(root)


def test_visibility_values_other_than_0_1_are_rejected(tmp_path, synthetic_root):
    def edit(vis):
        vis[1][5] = 2
        return vis
    root = _broken_copy(tmp_path, synthetic_root, "training_visibility.json", edit)
    with pytest.raises(ValueError, match=r"training_visibility\.json.*pose\(s\) \[1\].*0 or 1"):
        load_freihand(root)


def test_joint_behind_the_camera_is_rejected(tmp_path, synthetic_root):
    def edit(xyz):
        xyz[5][0][2] = 0.0  # z = 0: the projection would divide by zero
        return xyz
    root = _broken_copy(tmp_path, synthetic_root, "training_xyz.json", edit)
    with pytest.raises(ValueError, match=r"training_xyz\.json.*pose\(s\) \[5\].*z <= 0"):
        load_freihand(root)
