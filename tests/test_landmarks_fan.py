"""face_alignment backend, offline: random-weight files in a temporary TORCH_HOME drive the whole code path.

The weight files are state dicts of the package's own model classes (FAN, ResNetDepth, s3fd) saved under
the package's file names, so loading, detection, batched cropping, the landmark and depth networks and the
pixel mapping all run exactly as with the real weights, with no network. Real-weight accuracy is checked
only where the real files are in the user's cache.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch

from facemorphic.errors import FacemorphicError
from facemorphic.landmarks import TrackOptions, landmark_stream, make_backend
from facemorphic.landmarks.fan import FanBackend, fan_weight_files, missing_fan_weights
from facemorphic.video import write_mp4

REAL_CHECKPOINTS = Path(torch.hub.get_dir()) / "checkpoints"


def place_random_weights(landmarks_type: str) -> None:
    """Write randomly initialised weight files where face_alignment looks for the real ones."""
    from face_alignment.detection.sfd.net_s3fd import s3fd
    from face_alignment.models import FAN, ResNetDepth

    torch.manual_seed(0)
    for path, _ in fan_weight_files(landmarks_type):
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            continue
        if path.name.startswith("depth"):  # saved by DataParallel in the original: 'module.' prefix
            state = {"state_dict": {f"module.{k}": v for k, v in ResNetDepth().state_dict().items()}}
        elif path.name.startswith("s3fd"):
            state = s3fd().state_dict()
        else:
            state = FAN(4).state_dict()
        torch.save(state, path)


@pytest.fixture(scope="module")
def random_torch_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("torch_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(home))
        place_random_weights("3D")
        yield home


def small_frames(count: int) -> list[np.ndarray]:
    face = skimage.data.astronaut()[20:140, 130:250]
    frames = []
    for k in range(count):
        frame = np.full((120, 160, 3), 90, np.uint8)
        frame[0:120, 10 + 4 * k: 130 + 4 * k] = face
        frames.append(frame)
    return frames


def test_missing_weights_message_lists_files_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    folder = tmp_path / "hub" / "checkpoints"
    with pytest.raises(FacemorphicError) as error:
        FanBackend(landmarks_type="3D", device="cpu")
    message = str(error.value)
    for name in ("3DFAN4-7835d9f11d.pth.tar", "depth-2a464da4ea.pth.tar", "s3fd-619a316812.pth"):
        assert name in message
    assert str(folder) in message and "--backend dlib" in message
    assert not folder.exists() or not any(folder.iterdir())  # nothing was downloaded
    # auto falls back to dlib, loudly
    assert make_backend("auto", device="cpu").name == "dlib"


def test_batched_landmarks_equal_frame_by_frame_calls(random_torch_home):
    """One batched call equals a one-frame call, and the package's own per-image path.

    3D runs the depth network too; flip is off to keep CPU time down (the flip path runs in the next
    test). The package truncates x, y to whole pixels (towards zero), so it must equal ours truncated.
    """
    backend = FanBackend(landmarks_type="3D", device="cpu", batch_size=2, flip=False)
    images = small_frames(2)
    boxes = np.array([[25.0 + 4 * k, 20, 115 + 4 * k, 110] for k in range(2)])
    points, scores = backend.fit(images, boxes)
    assert points.shape == (2, 68, 3) and points.dtype == np.float32 and scores.shape == (2,)
    assert np.any(points[..., 2] != 0)
    single_points, single_scores = backend.fit(images[:1], boxes[:1])
    np.testing.assert_allclose(points[:1], single_points, atol=1e-3)
    np.testing.assert_allclose(scores[:1], single_scores, atol=1e-5)
    reference, point_scores, _ = backend.fa.get_landmarks_from_image(
        images[1], detected_faces=[boxes[1]], return_landmark_score=True)
    ours = points[1, :, :2]
    near_integer = np.abs(ours - np.round(ours)) < 1e-3
    assert np.all((reference[0][:, :2] == np.trunc(ours)) | near_integer)
    np.testing.assert_allclose(points[1, :, 2], reference[0][:, 2], rtol=1e-4, atol=1e-4)
    assert scores[1] == pytest.approx(float(np.mean(point_scores[0])), rel=1e-5)


def test_whole_path_offline_with_auto_backend(random_torch_home, tmp_path):
    assert missing_fan_weights("2.5D") == []
    backend = make_backend("auto", device="cpu", batch_size=2, flip=True)
    assert backend.name == "face_alignment" and backend.landmarks_type == "2.5D"
    path = tmp_path / "clip.mp4"
    write_mp4(path, small_frames(4))
    track, attrs = landmark_stream(backend, path, TrackOptions(lanes=2, lane_frames=2, progress=False))
    assert attrs["n_frames_decoded"] == 4
    assert track.landmarks.shape == (4, 68, 3) and track.bbox.shape == (4, 4)
    assert track.valid.dtype == bool and track.score.dtype == np.float32
    # two lanes per 4-frame chunk: frames 0 and 2 start a lane and are detected
    assert track.detected[0] and track.detected[2]
    valid = track.valid
    assert np.all(np.isfinite(track.landmarks[valid])) and np.all(track.landmarks[valid, :, 2] == 0)


@pytest.mark.skipif(
    any(not (REAL_CHECKPOINTS / path.name).is_file() for path, _ in fan_weight_files("2.5D")),
    reason=f"real face_alignment weights (3DFAN4, s3fd) not in {REAL_CHECKPOINTS}; never downloaded in tests",
)
def test_real_weights_accuracy_on_annotated_face(shared_data):
    from PIL import Image

    from facemorphic.landmarks.metrics import normalised_mean_error, read_pts

    backend = FanBackend(landmarks_type="2.5D", device="auto")
    image = np.asarray(Image.open(shared_data / "faces" / "takeo.ppm").convert("RGB"))
    truth = read_pts(shared_data / "faces" / "takeo.pts")
    found = backend.detect([image])[0]
    assert len(found) >= 1
    points, scores = backend.fit([image], found[:1, :4])
    assert scores[0] >= backend.min_score
    # 3DFAN's jaw points are projected 3D points, not the 2D contour of the annotation: a slightly wider bar
    assert normalised_mean_error(points[0], truth) <= 0.08


def test_heatmap_peaks_follow_the_package_rule():
    from face_alignment.utils import get_preds_fromhm

    from facemorphic.landmarks.fan import heatmap_peaks

    rng = np.random.default_rng(0)
    heatmaps = rng.random((3, 68, 64, 64)).astype(np.float32)
    heatmaps[0, 0, 0, 5] = heatmaps[0, 1, 63, 63] = heatmaps[1, 2, 10, 63] = 5.0  # peaks on the border
    expected, _, expected_values = get_preds_fromhm(heatmaps, np.zeros(2), 1.0)
    peaks, values = heatmap_peaks(heatmaps)
    np.testing.assert_array_equal(peaks, expected)
    np.testing.assert_array_equal(values, expected_values)
