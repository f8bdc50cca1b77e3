"""The MediaPipe teacher, offline: ``hp.detect_hands`` on the real hand photos of
../shared/realdata (FreiHAND and OneHand10K samples), its handedness convention and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

import handpose_utils as hp
from handpose_utils.images import ImageReadError

pytest.importorskip("mediapipe")

pytestmark = pytest.mark.realdata


def freihand_samples(realdata):
    rgb = sorted((realdata / "freihand" / "FreiHAND_pub_v2" / "training" / "rgb").glob("*.jpg"))
    expected = json.loads((realdata / "freihand" / "expected_uv.json").read_text())
    # image id = idx + N * version with N = 2 unique poses (the README of realdata)
    return [(path, np.asarray(expected[i % len(expected)], np.float32))
            for i, path in enumerate(rgb)]


def test_finds_the_hand_in_every_real_freihand_photo(realdata):
    samples = freihand_samples(realdata)
    assert len(samples) == 8
    errors = []
    for path, uv in samples:
        hands = hp.detect_hands(path, min_confidence=0.1)
        assert len(hands) == 1, f"{path.name}: {len(hands)} hands"
        hand = hands[0]
        assert hand["keypoints"].shape == (21, 2) and hand["z"].shape == (21,)
        assert 0 < hand["score"] <= 1
        # FreiHAND shows right hands; the legacy API's own label ("Left" on an unmirrored
        # photo) is turned into the subject's hand
        assert hand["handedness"] == "Right", path.name
        errors.append(np.linalg.norm(hand["keypoints"] - uv, axis=1).mean())
    # MediaPipe's joints sit a few pixels from FreiHAND's (its MCPs and wrist are defined
    # differently); a wrong joint order or a pixel scale error would be far larger
    assert np.mean(errors) < 15, errors


def test_finds_the_hands_of_onehand10k_within_a_tenth_of_the_box(realdata):
    root = realdata / "onehand10k"
    coco = json.loads((root / "annotations.json").read_text())
    images = {im["id"]: im for im in coco["images"]}
    assert len(coco["annotations"]) == 4
    for ann in coco["annotations"]:
        image = images[ann["image_id"]]
        path = next(root.rglob(image["file_name"].split("/")[-1]))
        kp = np.asarray(ann["keypoints"], np.float32).reshape(-1, 3)
        hands = hp.detect_hands(path, min_confidence=0.1)
        assert hands, f"no hand found in {path.name}"
        seen = kp[:, 2] > 0
        err = np.linalg.norm(hands[0]["keypoints"][seen] - kp[seen, :2], axis=1).mean()
        assert err < 0.1 * max(ann["bbox"][2:]), (path.name, err, ann["bbox"])


def test_handedness_follows_the_mirror(realdata):
    path, _ = freihand_samples(realdata)[0]
    mirrored = np.ascontiguousarray(hp.read_image(path)[:, ::-1])
    assert hp.detect_hands(mirrored, min_confidence=0.1)[0]["handedness"] == "Left"
    # a selfie (mirrored) image of a right hand: say so, and the label names the subject's hand
    selfie = hp.detect_hands(mirrored, min_confidence=0.1, image_mirrored=True)
    assert selfie[0]["handedness"] == "Right"


def test_no_hand_and_bad_input(tmp_path):
    assert hp.detect_hands(np.full((160, 160, 3), 127, np.uint8)) == []
    with pytest.raises(ValueError, match="uint8 RGB"):
        hp.detect_hands(np.zeros((160, 160), np.uint8))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(ImageReadError, match="broken.jpg"):
        hp.detect_hands(broken)
    with pytest.raises(FileNotFoundError, match="hand_landmarker.task"):
        hp.mediapipe_labels.create_hand_landmarker(tmp_path / "hand_landmarker.task")
