"""The MediaPipe teacher offline: ``label_ouhands`` with the models bundled in mediapipe 0.10.21
(``model_path=None``) on rendered OUHANDS images, images where it finds no hand, and notebook
04 trained on the teacher's labels."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import execute_notebook
from PIL import Image

from handpose_utils.datasets.ouhands import (
    REPORT_NAME,
    list_landmark_files,
    list_ouhands_images,
    read_extraction_report,
    read_landmark_file,
)

pytest.importorskip("mediapipe")
from handpose_utils import mediapipe_labels  # noqa: E402

if not mediapipe_labels.bundled_models_available():
    pytest.skip("this mediapipe has no bundled hand models (mp.solutions)", allow_module_level=True)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A small synthetic OUHANDS: 10 train, 10 validation and 10 test images."""
    from handpose_utils.synthetic.ouhands import ensure_synthetic_ouhands

    return ensure_synthetic_ouhands(tmp_path_factory.mktemp("oh") / "synthetic_ouhands",
                                    n_subjects=2, n_test_subjects=1, samples_per_class=1,
                                    seed=0, progress=False)


@pytest.fixture(scope="module")
def labelled(root, tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "landmarks_mediapipe"
    return out, mediapipe_labels.label_ouhands(root, None, out, progress=False)


def test_label_ouhands_offline_writes_files_and_report(root, labelled):
    out, report = labelled
    assert report["api"] == "solutions" and report["model"] == "bundled with mediapipe"
    assert report["teacher"].startswith("MediaPipe")
    # OUHANDS photos are not mirrored; the legacy API assumes they are, so labels are swapped
    assert report["image_mirrored"] is False and "swapped" in report["handedness"]
    assert read_extraction_report(out) == report
    for split, stats in report["splits"].items():
        images = list_ouhands_images(root, split)
        assert stats["images_seen"] == len(images) == 10
        assert stats["hands_found"] + len(stats["no_hand"]) == stats["images_seen"]
        assert stats["unreadable"] == []
        files = list_landmark_files(out, split)
        assert len(files) == stats["hands_found"]
        found = {f.name.removesuffix("_landmarks.json") for f in files}
        missed = {n.removesuffix(".png") for n in stats["no_hand"]}
        assert not found & missed and found | missed == {p.stem for p in images}
        for f in files:
            rec = read_landmark_file(f)  # validated: 21 landmarks, the image exists
            assert rec["handedness"]["label"] in ("Left", "Right")
            assert 0 < rec["handedness"]["score"] <= 1
    total = report["total"]
    assert total["images_seen"] == 30
    assert total["hands_found"] + total["no_hand"] == 30
    # the rendered hands are simpler than photos and MediaPipe misses many, but not all
    assert 0 < total["hands_found"] < 30


def test_teacher_against_the_renderer(root, labelled):
    out, report = labelled
    for split in ("train", "validation", "test"):
        check = mediapipe_labels.compare_with_ground_truth(out, root / "landmarks", split)
        stats = report["splits"][split]
        assert check["images"] == stats["images_seen"]
        assert check["detected"] == stats["hands_found"]
        assert check["detection_rate"] == pytest.approx(stats["hands_found"] / 10)
        assert check["missed"] == sorted(stats["no_hand"])
        if not check["detected"]:
            assert "mpjpe_2d_px" not in check
            continue
        assert len(check["per_joint_px"]) == 21 and len(check["per_image_px"]) == check["detected"]
        assert np.mean(list(check["per_image_px"].values())) == pytest.approx(
            check["mpjpe_2d_px"])
        # on the hand, not somewhere in the 640 x 480 frame: a hand spans ~150-250 px
        assert 0 < check["median_2d_px"] < 80
        assert 0 <= check["handedness_agreement"] <= 1


def test_limit_labels_the_first_images_and_replaces_earlier_files(root, tmp_path):
    out = tmp_path / "teacher"
    mediapipe_labels.label_ouhands(root, None, out, splits=("test",), progress=False)
    report = mediapipe_labels.label_ouhands(root, None, out, splits=("test",), limit=3,
                                            progress=False)
    stats = report["splits"]["test"]
    assert report["limit_per_split"] == 3 and stats["images_seen"] == 3
    assert len(list_landmark_files(out, "test")) == stats["hands_found"]  # no earlier files left
    check = mediapipe_labels.compare_with_ground_truth(out, root / "landmarks", "test")
    assert check["images"] == 3  # compared on the images it labelled, not the whole folder


def test_no_hand_found_is_reported_not_raised(root, tmp_path):
    # a copy of the dataset whose test images are blank: every one is "no hand"
    copy = tmp_path / "blank_ouhands"
    shutil.copytree(root, copy)
    for path in list_ouhands_images(copy, "test"):
        Image.fromarray(np.full((480, 640, 3), 127, np.uint8)).save(path)
    out = tmp_path / "teacher"
    report = mediapipe_labels.label_ouhands(copy, None, out, splits=("test",), progress=False)
    stats = report["splits"]["test"]
    assert stats["images_seen"] == 10 and stats["hands_found"] == 0
    assert stats["no_hand"] == sorted(p.name for p in list_ouhands_images(copy, "test"))
    assert report["total"]["no_hand"] == 10
    assert list_landmark_files(out, "test") == []
    check = mediapipe_labels.compare_with_ground_truth(out, copy / "landmarks", "test")
    assert check["detected"] == 0 and check["detection_rate"] == 0 and len(check["missed"]) == 10
    assert "mpjpe_2d_px" not in check

    # one blank image in a folder of one
    folder = tmp_path / "one"
    folder.mkdir()
    Image.fromarray(np.zeros((240, 320, 3), np.uint8)).save(folder / "blank.png")
    with mediapipe_labels.LegacyHandLandmarker() as teacher:
        stats = mediapipe_labels.label_folder(folder, tmp_path / "one_out", teacher,
                                              progress=False)
    assert stats == {"images_seen": 1, "hands_found": 0, "no_hand": ["blank.png"],
                     "unreadable": []}
    assert not list((tmp_path / "one_out").glob("*.json"))


def test_never_overwrites_another_teachers_labels(root):
    before = sorted(p.name for p in list_landmark_files(root / "landmarks", "test"))
    with pytest.raises(ValueError, match="another teacher"):
        mediapipe_labels.label_ouhands(root, None, root / "landmarks", splits=("test",),
                                       progress=False)
    assert sorted(p.name for p in list_landmark_files(root / "landmarks", "test")) == before
    assert json.loads((root / "landmarks" / REPORT_NAME).read_text())["teacher"].startswith(
        "synthetic")


@pytest.mark.notebook
def test_notebook_04_trains_on_the_teachers_labels(tmp_path):
    """Notebook 04 in smoke mode with ``TRAIN_LABELS = "teacher"``: the student learns
    MediaPipe's labels, and section 12 also scores it against the true joints."""
    import nbformat

    path = Path(__file__).resolve().parent.parent / "notebooks" / "04_mobilenetv2_landmarks.ipynb"
    nb = nbformat.read(path, as_version=4)
    params = [c for c in nb.cells if c.cell_type == "code" and 'TRAIN_LABELS = "truth"' in c.source]
    assert len(params) == 1
    params[0].source = params[0].source.replace('TRAIN_LABELS = "truth"',
                                                'TRAIN_LABELS = "teacher"')
    execute_notebook(nb, path, tmp_path / "data")
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                     for o in c.outputs)
    assert "training labels:" in text and "landmarks_mediapipe" in text
    assert "MediaPipe's labels are:" in text
    assert "test, true joints (10 images)" in text
