"""Video-aware landmarking: tracking through blanked frames, gap filling, smoothing, one face per recording.

The moving-face video is the astronaut's face (scikit-image) pasted 3 pixels further right every frame on a
grey 640x480 background, with frames blanked on purpose; the references are the known motion, dlib run on
every frame independently (the slow obvious implementation) and numpy's own interpolation / least squares.
"""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data

from facemorphic.landmarks import LandmarkTrack, TrackOptions, choose_face, fill_gaps, landmark_stream, smooth_track
from facemorphic.landmarks.dlib_backend import DlibBackend
from facemorphic.video import open_rgb, write_mp4

FACE = skimage.data.astronaut()[20:320, 80:380]
STEP_PX = 3
N_FRAMES = 50
SHORT_GAPS = [(12, 15), (25, 26)]  # [start, stop) blanked, no longer than max_gap
LONG_GAP = (30, 40)  # longer than max_gap: stays invalid
MAX_GAP = 5


def moving_face_frames(n_frames, blank):
    for k in range(n_frames):
        frame = np.full((480, 640, 3), 70, np.uint8)
        if k not in blank:
            frame[90:390, 40 + STEP_PX * k: 340 + STEP_PX * k] = FACE
        yield frame


@pytest.fixture(scope="module")
def blanked_video(tmp_path_factory):
    blank = set()
    for start, stop in SHORT_GAPS + [LONG_GAP]:
        blank |= set(range(start, stop))
    path = tmp_path_factory.mktemp("video") / "moving_face.mp4"
    write_mp4(path, moving_face_frames(N_FRAMES, blank))
    return path, blank


@pytest.fixture(scope="module")
def dlib_backend():
    return DlibBackend()


@pytest.fixture(scope="module")
def per_frame_reference(blanked_video, dlib_backend):
    """dlib detection + shape prediction on every frame on its own (no tracking)."""
    images = next(open_rgb(blanked_video[0]).batches(N_FRAMES)).images
    reference = np.full((N_FRAMES, 68, 3), np.nan, np.float32)
    for k, image in enumerate(images):
        found = dlib_backend.detect([image])[0]
        if len(found):
            reference[k] = dlib_backend.fit([image], found[:1, :4])[0][0]
    return reference


@pytest.mark.parametrize("lanes", [1, 4])
def test_tracking_through_blanked_frames(blanked_video, dlib_backend, per_frame_reference, lanes):
    path, blank = blanked_video
    track, attrs = landmark_stream(dlib_backend, path, TrackOptions(lanes=lanes, lane_frames=8, max_gap=MAX_GAP,
                                                                   progress=False))
    assert track.landmarks.shape == (N_FRAMES, 68, 3) and track.landmarks.dtype == np.float32
    assert attrs["n_frames_decoded"] == N_FRAMES
    # every blanked frame of a short gap is filled and flagged; the long gap stays invalid
    short = [k for start, stop in SHORT_GAPS for k in range(start, stop)]
    np.testing.assert_array_equal(np.flatnonzero(track.interpolated), short)
    expected_valid = np.ones(N_FRAMES, bool)
    expected_valid[LONG_GAP[0]:LONG_GAP[1]] = False
    np.testing.assert_array_equal(track.valid, expected_valid)
    assert np.all(np.isnan(track.landmarks[~track.valid])) and np.all(track.score[~track.valid] == 0)
    # detection runs on the first frame, on each blank frame and on the first face after a gap
    detected = np.flatnonzero(track.detected)
    for k in [0] + sorted(blank) + [stop for _, stop in SHORT_GAPS + [LONG_GAP]]:
        assert k in detected
    if lanes == 1:  # a single lane tracks every other frame
        assert len(detected) == 1 + len(blank) + len(SHORT_GAPS) + 1
    # tracked frames agree with per-frame detection and with the known motion
    seen = track.valid & ~track.interpolated
    iod = np.linalg.norm(per_frame_reference[0, 36:42, :2].mean(0) - per_frame_reference[0, 42:48, :2].mean(0))
    error = np.linalg.norm(track.landmarks[seen] - per_frame_reference[seen], axis=-1).mean(axis=-1) / iod
    assert error.max() < 0.04
    motion = track.landmarks[seen, :, :2] - track.landmarks[0, :, :2]
    motion[..., 0] -= STEP_PX * np.flatnonzero(seen)[:, None]
    assert np.abs(motion).mean(axis=(1, 2)).max() < 1.0
    # interpolated frames lie on the straight line between the gap's neighbours (numpy's interp)
    for start, stop in SHORT_GAPS:
        frames = np.array([start - 1, stop])
        for point in (8, 30, 36):
            for axis in (0, 1):
                expected = np.interp(np.arange(start, stop), frames, track.landmarks[frames, point, axis])
                np.testing.assert_allclose(track.landmarks[start:stop, point, axis], expected, atol=1e-3)
    # boxes are the landmarks' tight boxes
    np.testing.assert_allclose(track.bbox[seen, 0], np.nanmin(track.landmarks[seen, :, 0], axis=1))
    np.testing.assert_allclose(track.bbox[seen, 3], np.nanmax(track.landmarks[seen, :, 1], axis=1))


def test_max_gap_zero_leaves_blanks_invalid(blanked_video, dlib_backend):
    path, blank = blanked_video
    track, _ = landmark_stream(dlib_backend, path, TrackOptions(max_gap=0, progress=False))
    np.testing.assert_array_equal(np.flatnonzero(~track.valid), sorted(blank))
    assert not track.interpolated.any()


def make_track(valid: np.ndarray, rng) -> LandmarkTrack:
    track = LandmarkTrack.empty(len(valid))
    track.landmarks[valid] = rng.normal(100, 10, (int(valid.sum()), 68, 3))
    track.valid[:] = valid
    track.score[valid] = rng.uniform(0.5, 1, int(valid.sum()))
    return track


def test_fill_gaps_rules():
    rng = np.random.default_rng(0)
    valid = np.array([0, 1, 1, 0, 0, 1, 0, 0, 0, 1, 1, 0], bool)
    track = make_track(valid, rng)
    assert fill_gaps(track, max_gap=2) == 2
    np.testing.assert_array_equal(track.interpolated, [0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(track.valid, [0, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 0])  # edges never filled
    assert track.score[3] == track.score[4] == min(track.score[2], track.score[5])
    np.testing.assert_allclose(track.landmarks[3], (2 * track.landmarks[2] + track.landmarks[5]) / 3, rtol=1e-6)
    assert fill_gaps(track, max_gap=3) == 3 and track.valid[1:11].all()


def test_smoothing_matches_local_quadratic_fit():
    rng = np.random.default_rng(1)
    valid = np.ones(40, bool)
    valid[20] = False
    track = make_track(valid, rng)
    raw = track.landmarks.copy()
    smooth_track(track, window=7)
    # interior frame of the first run: value of the least-squares quadratic through frames 7..13
    for frame in (5, 10, 14):
        times = np.arange(frame - 3, frame + 4)
        coef = np.polyfit(times, raw[times, 17, 0], 2)
        assert track.landmarks[frame, 17, 0] == pytest.approx(np.polyval(coef, frame), abs=1e-3)
    assert np.isnan(track.landmarks[20]).all()
    assert np.std(np.diff(track.landmarks[:20, :, 0], axis=0)) < np.std(np.diff(raw[:20, :, 0], axis=0))


def test_choose_face_prefers_nearest_then_largest():
    faces = np.array([[0, 0, 100, 100, 1.0], [300, 300, 350, 350, 2.0]])
    assert choose_face(faces, None)[0] == 0  # largest
    assert choose_face(faces, np.array([290.0, 290, 340, 340]))[0] == 300  # nearest the previous face
    assert choose_face(np.zeros((0, 5)), None) is None
