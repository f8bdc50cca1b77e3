"""The realism tool (:mod:`handpose_utils.realism`): MediaPipe's detection rate and keypoint error
on rendered images, with the counts behind every figure."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from PIL import Image

from handpose_utils.mediapipe_labels import mediapipe_available

if not mediapipe_available():
    pytest.skip("mediapipe is not installed: the realism tool needs it", allow_module_level=True)

from handpose_utils import load_freihand  # noqa: E402
from handpose_utils.realism import ablation_styles, detection_rate, main  # noqa: E402
from handpose_utils.synthetic.style import RenderStyle  # noqa: E402


def test_main_prints_and_writes_both_renderers_with_their_counts(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["--poses", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["poses"] == 3
    detection = result["detection"]
    # the plain renderer and the course's
    assert sorted(name.startswith("plain") for name in detection) == [False, True], detection
    for name, figures in detection.items():
        assert figures["images"] == 3 * 4, name  # 3 poses x FreiHAND's 4 versions
        assert 0 < figures["joints"] <= 12 * 21, name
        assert 0 <= figures["found"] <= 1, name
        rows = [line for line in printed.splitlines() if line.startswith(name)]
        assert len(rows) == 1, printed
        assert re.search(r"\b12 images\b", rows[0]), f"no count of images in {rows[0]!r}"


def test_detection_rate_finds_real_hands_near_their_labels(realdata):
    records = load_freihand(realdata / "freihand" / "FreiHAND_pub_v2", "training")
    result = detection_rate(records)
    assert result["images"] == len(records) == 8
    assert result["joints"] == sum(int(np.sum(r["visible"])) for r in records)
    assert result["found"] >= 0.5, result
    assert result["error_px"] < 15, result

    # the error is measured against the labels: labels 25 px off make it about that much larger
    shifted = detection_rate([dict(rec, keypoints=moved(rec, 25)) for rec in records])
    assert shifted["found"] == result["found"]
    assert shifted["error_px"] > result["error_px"] + 12, (result, shifted)
    # a hand far from the labels is not the labelled hand (as a second hand in a picture is not)
    elsewhere = detection_rate([dict(rec, keypoints=moved(rec, 100)) for rec in records])
    assert elsewhere["found"] == 0, elsewhere


def moved(record: dict, dx: float) -> np.ndarray:
    """The record's keypoints ``dx`` pixels to the right."""
    return np.asarray(record["keypoints"], float).reshape(-1, 2) + [dx, 0.0]


def test_detection_rate_finds_no_hand_in_a_grey_image(tmp_path):
    path = tmp_path / "grey.jpg"
    Image.fromarray(np.full((224, 224, 3), 128, np.uint8)).save(path)
    record = {"image_path": str(path), "keypoints": np.full((21, 2), 112.0),
              "visible": np.ones(21, bool)}
    result = detection_rate([record])
    assert result["images"] == 1 and result["joints"] == 21
    assert result["found"] == 0
    assert math.isnan(result["error_px"])  # nothing found, no error to average


def test_main_refuses_no_poses(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--poses", "0"])
    assert exit_.value.code != 0
    assert "--poses must be at least 1" in capsys.readouterr().err


def test_ablation_turns_off_every_switch_in_turn():
    styles = ablation_styles()
    assert styles["all on"] == RenderStyle()
    for switch in RenderStyle.switches():
        assert styles[f"without {switch}"] == RenderStyle.without(switch), switch
    plain = [name for name, style in styles.items() if style.is_plain()]
    assert len(plain) == 1 and plain[0].startswith("plain"), plain
