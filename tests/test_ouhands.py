"""OUHANDS: the native-layout reader, landmark files, the synthetic generator and the MediaPipe
teacher's conversion (with real mediapipe result types when mediapipe is installed)."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from handpose_utils import read_image
from handpose_utils.camera import project
from handpose_utils.datasets.freihand import DatasetNotFoundError, synthetic_meta
from handpose_utils.datasets.ouhands import (
    OUHANDS_CLASSES,
    LandmarkFileError,
    install_ouhands,
    landmark_file_path,
    list_landmark_files,
    list_ouhands_images,
    load_landmark_files,
    load_ouhands,
    parse_ouhands_name,
    read_extraction_report,
    read_landmark_file,
    read_split_list,
    write_landmark_file,
)
from handpose_utils.mediapipe_labels import (
    LEGACY_ASSUMES_MIRRORED,
    TASKS_ASSUMES_MIRRORED,
    compare_with_ground_truth,
    handedness_swap_needed,
    swap_handedness_label,
)
from handpose_utils.synthetic.hand_model import GESTURES
from handpose_utils.synthetic.ouhands import (
    CLASS_GESTURES,
    ensure_synthetic_ouhands,
    make_subject,
    mediapipe_landmarks,
    pick_validation_subjects,
    render_ouhands_sample,
)

SETTINGS = dict(n_subjects=3, n_test_subjects=1, samples_per_class=1, seed=4)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """3 training subjects (1 in validation) and 1 test subject, one image per class each."""
    return ensure_synthetic_ouhands(tmp_path_factory.mktemp("ou") / "synthetic_ouhands",
                                    progress=False, **SETTINGS)


def _landmarks(record) -> np.ndarray:
    return np.array([[p["x"], p["y"], p["z"]] for p in record["landmarks"]])


def test_native_layout_and_split_lists(root):
    train, val = read_split_list(root, "train"), read_split_list(root, "validation")
    assert len(train) == 20 and len(val) == 10  # 2 + 1 subjects x 10 classes
    subjects = lambda names: {parse_ouhands_name(n)["subject"] for n in names}
    assert not subjects(train) & subjects(val), "validation holds whole subjects"
    test = list_ouhands_images(root, "test")
    assert len(test) == 10 and not subjects(p.name for p in test) & subjects(train + val)
    colour = sorted(p.name for p in (root / "OUHANDS_train/train/hand_data/colour").iterdir())
    assert colour == sorted(train + val)
    assert {parse_ouhands_name(n)["class"] for n in train} == set(OUHANDS_CLASSES)
    image = read_image(test[0])
    assert image.shape == (480, 640, 3) and test[0].suffix == ".png"
    rec = load_ouhands(root, "validation")[0]
    assert rec["class"] in OUHANDS_CLASSES and rec["number"] == 1 and Path(rec["image_path"]).is_file()


def test_parse_name():
    assert parse_ouhands_name("K-vkb-0010.png") == {"class": "K", "subject": "vkb", "number": 10}
    with pytest.raises(ValueError, match="G-abc-0001"):  # there is no class G in OUHANDS
        parse_ouhands_name("G-abc-0001.png")


def test_landmark_files_cover_every_image_with_the_reference_format(root):
    report = read_extraction_report(root / "landmarks")
    for split, n in (("train", 20), ("validation", 10), ("test", 10)):
        files = list_landmark_files(root / "landmarks", split)
        assert len(files) == n and report["splits"][split]["hands_found"] == n
        raw = json.loads(files[0].read_text())
        assert set(raw) == {"image_path", "image_shape", "landmarks", "handedness"}
        assert raw["image_shape"] == [480, 640, 3] and len(raw["landmarks"]) == 21
        assert not Path(raw["image_path"]).is_absolute()  # relative: the folder can move
        rec = read_landmark_file(files[0])
        assert Path(rec["image_path"]).name == files[0].name.replace("_landmarks.json", ".png")
        assert rec["handedness"]["label"] in ("Left", "Right") and rec["handedness"]["score"] == 1
    names = {p.name for p in list_landmark_files(root / "landmarks", "train")}
    assert names == {n.replace(".png", "_landmarks.json") for n in read_split_list(root, "train")}


def test_synthetic_landmarks_are_mediapipe_normalised():
    subject = make_subject(0, 0, "abc")
    s = render_ouhands_sample(0, "train", 0, subject, "A", 1)
    lm, xyz, K = s["landmarks"], s["xyz"], s["K"]
    uv = project(xyz, K)
    np.testing.assert_allclose(lm[:, 0] * 640 - 0.5, uv[:, 0], atol=1e-9)
    np.testing.assert_allclose(lm[:, 1] * 480 - 0.5, uv[:, 1], atol=1e-9)
    assert (lm[:, :2] > 0).all() and (lm[:, :2] < 1).all()
    assert lm[0, 2] == 0  # z is relative to the wrist
    # z is on x's scale: a depth step dZ counts like a sideways step dX at the wrist's depth.
    dz_metres = xyz[:, 2] - xyz[0, 2]
    np.testing.assert_allclose(lm[:, 2], dz_metres * K[0, 0] / (xyz[0, 2] * 640), atol=1e-12)
    closer = xyz[:, 2] < xyz[0, 2]
    assert (lm[closer, 2] < 0).all() and (lm[~closer, 2] >= 0).all()  # negative = closer
    assert s["handedness"] == subject.side.capitalize()


def test_mediapipe_landmarks_formula():
    K = np.array([[500.0, 0, 319.5], [0, 500, 239.5], [0, 0, 1]])
    joints = np.zeros((21, 3))
    joints[:, 2] = 0.5
    joints[1] = [0.1, 0.0, 0.4]  # 10 cm right of the axis, 10 cm closer than the wrist
    lm = mediapipe_landmarks(joints, K, 640, 480)
    assert lm[0].tolist() == [0.5, 0.5, 0.0]
    assert lm[1, 0] == pytest.approx((319.5 + 500 * 0.1 / 0.4 + 0.5) / 640)
    assert lm[1, 2] == pytest.approx(-0.1 * 500 / (0.5 * 640))


def test_validation_subjects_are_stratified_by_hand_side():
    subjects = [make_subject(0, i, f"s{i:02d}") for i in range(20)]
    assert sum(s.side == "left" for s in subjects) == 5
    for seed in range(5):
        val = pick_validation_subjects(subjects, 4, seed)
        sides = sorted(subjects[i].side for i in val)
        assert len(val) == 4 and sides == ["left", "right", "right", "right"]
    assert len(pick_validation_subjects(subjects[:2], 1, 0)) == 1


def test_class_gestures_are_distinct_renderer_gestures():
    assert set(CLASS_GESTURES) == set(OUHANDS_CLASSES)
    assert len(set(CLASS_GESTURES.values())) == 10 and set(CLASS_GESTURES.values()) <= set(GESTURES)


def test_deterministic():
    a = render_ouhands_sample(1, "test", 2, make_subject(1, 2, "xyz"), "K", 3)
    b = render_ouhands_sample(1, "test", 2, make_subject(1, 2, "xyz"), "K", 3)
    assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["landmarks"], b["landmarks"])


def test_ensure_reuses_a_complete_dataset_and_leaves_no_temporary_folders(root):
    stamp = (root / "synthetic_meta.json").stat().st_mtime_ns
    assert ensure_synthetic_ouhands(root, progress=False, **SETTINGS) == root
    assert (root / "synthetic_meta.json").stat().st_mtime_ns == stamp  # not regenerated
    assert synthetic_meta(root)["counts"] == {"train": 20, "validation": 10, "test": 10}
    assert not list(root.parent.glob(".*.tmp"))  # the .lock file stays, no temporary does


def test_folder_can_move(root, tmp_path):
    moved = shutil.copytree(root, tmp_path / "moved")
    recs = load_landmark_files(moved / "landmarks", "validation")
    assert all(str(moved) in r["image_path"] for r in recs)


def test_a_relative_root_works(tmp_path, monkeypatch):
    """The landmark files' image paths are relative to the files, not to the working folder."""
    monkeypatch.chdir(tmp_path)
    from handpose_utils.synthetic.ouhands import make_ouhands

    make_ouhands("rel", **dict(SETTINGS, n_subjects=2, n_test_subjects=0), progress=False)
    monkeypatch.chdir("/")
    assert len(load_landmark_files(tmp_path / "rel" / "landmarks", "train")) == 10


def _lm_list(n=21):
    return [(0.1 + 0.01 * i, 0.5, -0.01 * i) for i in range(n)]


def test_landmark_file_errors_name_the_file(tmp_path):
    image = tmp_path / "A-abc-0001.png"
    image.write_bytes(b"not needed: check_image=False below")
    good = write_landmark_file(tmp_path / "lm" / "good_landmarks.json", image, (480, 640, 3),
                               _lm_list(), {"label": "Left", "score": 0.9})
    assert read_landmark_file(good)["handedness"] == {"label": "Left", "score": 0.9}
    raw = json.loads(good.read_text())

    def bad(name, **change):
        path = tmp_path / "lm" / name
        path.write_text(json.dumps({**raw, **change}))
        return path

    cases = {
        "short_landmarks.json": dict(landmarks=raw["landmarks"][:20]),
        "nan_landmarks.json": dict(landmarks=[{"x": float("nan"), "y": 0, "z": 0}] * 21),
        "hand_landmarks.json": dict(handedness={"label": "left", "score": 0.9}),
        "shape_landmarks.json": dict(image_shape=[480, 640]),
    }
    for name, change in cases.items():
        with pytest.raises(LandmarkFileError, match=name):
            read_landmark_file(bad(name, **change))
    with pytest.raises(LandmarkFileError, match="exactly 21"):
        read_landmark_file(tmp_path / "lm" / "short_landmarks.json")
    broken = tmp_path / "lm" / "broken_landmarks.json"
    broken.write_text('{"image_path": ')
    with pytest.raises(LandmarkFileError, match="broken_landmarks.json.*not valid JSON"):
        read_landmark_file(broken)
    missing = bad("gone_landmarks.json", image_path="nowhere/A-abc-0002.png")
    with pytest.raises(LandmarkFileError, match="gone_landmarks.json.*not found"):
        read_landmark_file(missing)
    with pytest.raises(ValueError, match="21"):
        write_landmark_file(tmp_path / "x_landmarks.json", image, (480, 640, 3), _lm_list(20))


def test_reference_style_paths_resolve_with_image_root(root, tmp_path):
    """The reference wrote image_path relative to its project root ("dataset/OUHANDS_train/...")."""
    image = list_ouhands_images(root, "train")[0]
    project_root = tmp_path / "project"
    (project_root / "dataset").mkdir(parents=True)
    shutil.copytree(root / "OUHANDS_train", project_root / "dataset" / "OUHANDS_train")
    rel = "dataset/OUHANDS_train/train/hand_data/colour/" + image.name
    path = landmark_file_path(project_root / "landmarks", "train", image)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"image_path": rel, "image_shape": [480, 640, 3],
                                "landmarks": [dict(zip("xyz", p)) for p in _lm_list()],
                                "handedness": None}))
    with pytest.raises(LandmarkFileError, match="image_root"):
        read_landmark_file(path)
    rec = read_landmark_file(path, image_root=project_root)
    assert Path(rec["image_path"]) == project_root / rel and rec["handedness"] is None


def test_missing_data_says_how_to_get_it(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="ensure_synthetic_ouhands"):
        list_ouhands_images(tmp_path, "train")
    with pytest.raises(DatasetNotFoundError, match="landmark folder not found"):
        list_landmark_files(tmp_path / "landmarks", "test")


def test_install_from_archives(root, tmp_path):
    archive = tmp_path / "OUHANDS_train.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in (root / "OUHANDS_train").rglob("*"):
            zf.write(p, Path("OUHANDS") / p.relative_to(root))
    found = install_ouhands([archive], tmp_path / "data")
    assert found == tmp_path / "data" / "OUHANDS"
    assert len(list_ouhands_images(found, "train")) == 20
    (tmp_path / "bad.zip").write_bytes(b"PK but not really")
    with pytest.raises(DatasetNotFoundError, match="bad.zip"):
        install_ouhands(tmp_path / "bad.zip", tmp_path / "data2")


# --------------------------------------------------------------------------------------------
# The teacher


def test_handedness_conventions():
    assert swap_handedness_label("Left") == "Right" and swap_handedness_label("Right") == "Left"
    # Ordinary camera images (OUHANDS): the Tasks API's label is kept, the legacy API's swapped.
    assert not handedness_swap_needed(False, TASKS_ASSUMES_MIRRORED)
    assert handedness_swap_needed(False, LEGACY_ASSUMES_MIRRORED)
    assert handedness_swap_needed(True, TASKS_ASSUMES_MIRRORED)
    assert not handedness_swap_needed(True, LEGACY_ASSUMES_MIRRORED)


def test_compare_with_ground_truth(root, tmp_path):
    """A fake teacher: 2 px to the right on every joint, labels swapped, one image missed."""
    truth = root / "landmarks"
    teacher = tmp_path / "teacher"
    files = list_landmark_files(truth, "validation")
    for f in files[1:]:
        rec = read_landmark_file(f)
        lm = _landmarks(rec) + [2 / 640, 0, 0.01]
        hand = {"label": swap_handedness_label(rec["handedness"]["label"]), "score": 0.8}
        write_landmark_file(teacher / "validation" / f.name, rec["image_path"], (480, 640, 3),
                            lm, hand)
    stats = compare_with_ground_truth(teacher, truth, "validation")
    assert stats["images"] == 10 and stats["detected"] == 9
    assert stats["mpjpe_2d_px"] == pytest.approx(2.0, abs=1e-3)
    assert stats["z_mae"] == pytest.approx(0.01, abs=1e-5)
    assert stats["handedness_agreement"] == 0.0  # all swapped: the convention is the other one


class FakeLandmarker:
    """Stands in for MediaPipe's HandLandmarker (whose model file cannot be downloaded here) and
    returns real ``HandLandmarkerResult`` objects: no hand for images whose name has "B-"."""

    def __init__(self):
        from mediapipe.tasks.python.components.containers import category, landmark
        from mediapipe.tasks.python.vision import HandLandmarkerResult

        self.seen = []
        self.hand = HandLandmarkerResult(
            handedness=[[category.Category(index=0, score=0.875, display_name="Left",
                                           category_name="Left")]],
            hand_landmarks=[[landmark.NormalizedLandmark(x=x, y=y, z=z, visibility=0.0,
                                                         presence=0.0) for x, y, z in _lm_list()]],
            hand_world_landmarks=[[landmark.Landmark(x=0.0, y=0.0, z=0.0) for _ in range(21)]],
        )
        self.none = HandLandmarkerResult(handedness=[], hand_landmarks=[], hand_world_landmarks=[])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def detect(self, image):
        self.seen.append(image.numpy_view().shape)
        return self.none if image.numpy_view()[0, 0, 0] == 7 else self.hand


def test_mediapipe_result_conversion_with_real_types():
    pytest.importorskip("mediapipe")
    from handpose_utils.mediapipe_labels import result_to_landmark_record

    fake = FakeLandmarker()
    rec = result_to_landmark_record(fake.hand, "/data/A-abc-0001.png", (480, 640, 3))
    assert rec["image_shape"] == [480, 640, 3] and len(rec["landmarks"]) == 21
    assert rec["landmarks"][3] == pytest.approx({"x": 0.13, "y": 0.5, "z": -0.03})
    assert rec["handedness"] == {"label": "Left", "score": 0.875}
    swapped = result_to_landmark_record(fake.hand, "/data/A-abc-0001.png", (480, 640, 3),
                                        swap_handedness=True)
    assert swapped["handedness"]["label"] == "Right"
    assert result_to_landmark_record(fake.none, "/data/x.png", (480, 640, 3)) is None
    fake.hand.hand_landmarks[0] = fake.hand.hand_landmarks[0][:20]
    with pytest.raises(LandmarkFileError, match="A-abc-0001.png.*20 landmarks"):
        result_to_landmark_record(fake.hand, "/data/A-abc-0001.png", (480, 640, 3))


def test_label_folder_and_report_with_real_types(root, tmp_path):
    pytest.importorskip("mediapipe")
    from handpose_utils.mediapipe_labels import label_folder

    images = tmp_path / "images"
    images.mkdir()
    for p in list_ouhands_images(root, "test")[:3]:
        shutil.copy(p, images / p.name)
    from PIL import Image

    Image.fromarray(np.full((480, 640, 3), 7, np.uint8)).save(images / "B-zzz-0001.png")
    fake = FakeLandmarker()
    stats = label_folder(images, tmp_path / "out", fake, progress=False)
    assert stats["images_seen"] == 4 and stats["hands_found"] == 3
    assert stats["no_hand"] == ["B-zzz-0001.png"] and fake.seen[0] == (480, 640, 3)
    files = sorted((tmp_path / "out").glob("*_landmarks.json"))
    assert len(files) == 3
    rec = read_landmark_file(files[0])
    assert Path(rec["image_path"]).parent == images and rec["handedness"]["label"] == "Left"
    (images / "C-zzz-0001.png").write_bytes(b"truncated")
    with pytest.raises(Exception, match="C-zzz-0001.png"):
        label_folder(images, tmp_path / "out2", fake, progress=False)
    stats = label_folder(images, tmp_path / "out3", fake, skip_bad=True, progress=False)
    assert len(stats["unreadable"]) == 1 and stats["unreadable"][0].startswith("C-zzz-0001.png")


def test_label_ouhands_writes_the_reference_layout_and_report(root, tmp_path, monkeypatch):
    pytest.importorskip("mediapipe")
    from handpose_utils import mediapipe_labels

    monkeypatch.setattr(mediapipe_labels, "create_hand_landmarker",
                        lambda *a, **k: FakeLandmarker())
    report = mediapipe_labels.label_ouhands(root, "unused.task", tmp_path / "teacher",
                                            splits=("validation", "test"), progress=False)
    assert report["splits"]["validation"]["hands_found"] == 10
    assert report["total"] == {"images_seen": 20, "hands_found": 20, "no_hand": 0}
    assert "kept" in report["handedness"] and report["image_mirrored"] is False
    assert read_extraction_report(tmp_path / "teacher") == report
    assert len(list_landmark_files(tmp_path / "teacher", "test")) == 10
    swapped = mediapipe_labels.label_ouhands(root, "unused.task", tmp_path / "legacy",
                                             splits=("test",), swap_handedness=True,
                                             progress=False)
    rec = read_landmark_file(list_landmark_files(tmp_path / "legacy", "test")[0])
    assert rec["handedness"]["label"] == "Right" and "swapped" in swapped["handedness"]
