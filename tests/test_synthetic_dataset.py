"""Acceptance tests of the synthetic FACEMORPHIC dataset on a tiny generated set.

One module-scoped set: three users, every AU once, 0.8-second recordings (user00 also has a free and a
reading recording), event renders at 60-240 Hz to keep it quick. Checked against independent
references: dlib's real face detector and 68-point predictor against the true landmarks, evlib's
decoder against the project's reader, and a nearest-centroid classifier against chance.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from facemorphic import ACTION_UNITS
from facemorphic.synthetic.dataset import UserOptions, generate_user, plan_recordings, recording_id
from facemorphic.synthetic.recording import EventOptions
from facemorphic.synthetic.truth import list_recordings, read_truth

SEED = 11
USERS = ("user00", "user01", "user02")
FAST_EVENTS = EventOptions(min_substeps=2, max_substeps=8, max_motion_px=1.0)
TINY = UserOptions(repetitions=1, free=0, reading=0, au_duration_s=0.8, events=FAST_EVENTS)
TINY_FIRST = UserOptions(repetitions=1, free=1, reading=2, au_duration_s=0.8, free_duration_s=1.2,
                         reading_duration_s=1.2, events=FAST_EVENTS)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    for index, user in enumerate(USERS):
        generate_user(root, user, index, SEED, TINY_FIRST if index == 0 else TINY, progress=False)
    return root


def _raw_files(root: Path) -> list[Path]:
    return sorted(root.glob("*/AU_*/event_*.raw"))


def test_layout_sync_and_truth_match(dataset):
    """Every planned recording exists with its RAW, MP4, sync row and truth group."""
    import av
    import pandas as pd

    for index, user in enumerate(USERS):
        options = TINY_FIRST if index == 0 else TINY
        plan = plan_recordings(options)
        sync = pd.read_csv(dataset / user / "sync.csv")
        assert list(sync.columns) == ["recording_id", "event_offset_us"]
        ids = [recording_id(user, rec.folder, rec.repetition) for rec in plan]
        assert sorted(sync["recording_id"]) == sorted(ids)
        assert list_recordings(dataset / "truth" / f"{user}.h5") == sorted(ids)
        for rec, rid in zip(plan, ids):
            folder = dataset / user / rec.folder
            assert (folder / f"event_{rec.repetition}.raw").is_file()
            truth = read_truth(dataset / "truth" / f"{user}.h5", rid)
            with av.open(str(folder / f"frames_{rec.repetition}.mp4")) as container:
                stream = container.streams.video[0]
                frames = sum(1 for _ in container.decode(stream))
                assert (stream.width, stream.height) == (640, 480)
                assert float(stream.average_rate) == 30.0
            assert frames == len(truth["rgb_times_s"]) == len(truth["landmarks_rgb"])
            assert truth["au_intensity"].shape == (frames, len(ACTION_UNITS))
            assert truth["event_offset_us"] == int(sync.set_index("recording_id").loc[rid, "event_offset_us"])
            assert truth["task"] == rec.task and truth["au"] == rec.au
            if rec.task == "au":  # the recorded AU reaches its peak inside the recording
                assert truth["au_intensity"][:, ACTION_UNITS.index(rec.au)].max() > 0.6
    sentences = (dataset / "user00" / "AU_READING" / "sentences.txt").read_text().splitlines()
    assert len(sentences) == 2 and all(sentences)


def test_dlib_finds_the_face_and_its_landmarks(dataset):
    """dlib's HOG detector finds >= 95% of faces; its 68 landmarks are within NME 0.10 of the truth."""
    import importlib.util

    import av
    import dlib

    # face_recognition_models' own helper needs pkg_resources; find its model file directly
    spec = importlib.util.find_spec("face_recognition_models")
    predictor_path = Path(spec.submodule_search_locations[0]) / "models" / "shape_predictor_68_face_landmarks.dat"
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(predictor_path))
    found = tried = 0
    errors = []
    for user in USERS:
        truth_path = dataset / "truth" / f"{user}.h5"
        for rid in list_recordings(truth_path):
            truth = read_truth(truth_path, rid)
            folder, rep = rid[len(user) + 1:].rsplit("_", 1)
            with av.open(str(dataset / user / folder / f"frames_{rep}.mp4")) as container:
                images = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
            for k in range(0, len(images), 4):
                tried += 1
                boxes = detector(images[k], 0)
                if not boxes:
                    continue
                found += 1
                shape = predictor(images[k], boxes[0])
                pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
                true = truth["landmarks_rgb"][k]
                iod = np.linalg.norm(true[36] - true[45])
                errors.append(np.linalg.norm(pts - true, axis=1).mean() / iod)
    assert tried > 350
    assert found / tried >= 0.95
    assert np.mean(errors) <= 0.10
    assert np.percentile(errors, 95) <= 0.15


def test_project_reader_and_evlib_agree(dataset):
    """The project's reader and evlib decode the generated RAW files identically; times are sorted."""
    import evlib

    from facemorphic.events.raw import read_events

    files = _raw_files(dataset)
    assert len(files) == len(USERS) * len(ACTION_UNITS) + 3
    for i, path in enumerate(files):
        events, _ = read_events(path)
        assert len(events) > 1000
        assert np.all(np.diff(events["t"]) >= 0)
        assert events["x"].max() < 1280 and events["y"].max() < 720
        if i % 3:  # evlib is slow: every third file
            continue
        frame = evlib.load_events(str(path)).collect()
        t = frame["t"].dt.total_microseconds().to_numpy()
        np.testing.assert_array_equal(t, events["t"])
        np.testing.assert_array_equal(frame["x"].to_numpy(), events["x"])
        np.testing.assert_array_equal(frame["y"].to_numpy(), events["y"])
        np.testing.assert_array_equal(frame["polarity"].to_numpy() > 0, events["p"] == 1)


def _face_box(landmarks: np.ndarray, grow: float = 0.35) -> tuple[float, float, float, float]:
    lo, hi = landmarks.min(0), landmarks.max(0)
    size = hi - lo
    return lo[0] - grow * size[0], lo[1] - grow * size[1], hi[0] + grow * size[0], hi[1] + grow * size[1]


def _in_box(events, box) -> np.ndarray:
    return (events["x"] >= box[0]) & (events["x"] <= box[2]) & (events["y"] >= box[1]) & (events["y"] <= box[3])


def test_event_rate_in_the_face_rises_with_the_au(dataset):
    """Around each AU's apex (onset to offset) the face region fires far more events than when idle."""
    from facemorphic.events.raw import read_events

    truth_path = dataset / "truth" / "user01.h5"
    ratios = {}
    for au in (1, 4, 12, 26, 43, 51, 53, 55):
        rid = f"user01_AU_{au}_1"
        truth = read_truth(truth_path, rid)
        act = next(a for a in truth["script"]["activations"] if a["au"] == au)
        events, _ = read_events(dataset / "user01" / f"AU_{au}" / "event_1.raw")
        events = events[_in_box(events, _face_box(truth["landmarks_event"][0]))]
        t_rgb = (events["t"] - truth["event_offset_us"]) * 1e-6
        start, end = act["start"], act["start"] + act["onset"] + act["hold"] + act["offset"]
        active = ((t_rgb >= start) & (t_rgb < end)).sum() / (end - start)
        idle_window = (t_rgb >= -truth["event_offset_us"] * 1e-6) & (t_rgb < min(start, 0.3))
        idle = idle_window.sum() / (min(start, 0.3) + truth["event_offset_us"] * 1e-6)
        ratios[au] = active / idle
    assert all(r > 2.0 for r in ratios.values()), ratios
    assert np.median(list(ratios.values())) > 4.0, ratios


def _summed_event_frame(path: Path, truth: dict, grid: int = 12) -> np.ndarray:
    """ON and OFF event counts of a whole recording on a grid over the (first-frame) face box."""
    from facemorphic.events.raw import read_events

    events, _ = read_events(path)
    box = _face_box(truth["landmarks_event"][0])
    events = events[_in_box(events, box)]
    gx = np.clip(((events["x"] - box[0]) / (box[2] - box[0]) * grid).astype(int), 0, grid - 1)
    gy = np.clip(((events["y"] - box[1]) / (box[3] - box[1]) * grid).astype(int), 0, grid - 1)
    hist = np.zeros((2, grid, grid))
    np.add.at(hist, (events["p"].astype(int), gy, gx), 1.0)
    feature = np.sqrt(hist).ravel()
    return feature / max(np.linalg.norm(feature), 1e-9)


def test_nearest_centroid_beats_chance_on_held_out_users(dataset):
    """Summed event frames carry the AU: leave-one-user-out nearest centroid is far above 1/24."""
    features = {}
    for user in USERS:
        truth_path = dataset / "truth" / f"{user}.h5"
        for au in ACTION_UNITS:
            rid = f"{user}_AU_{au}_1"
            features[user, au] = _summed_event_frame(dataset / user / f"AU_{au}" / "event_1.raw",
                                                     read_truth(truth_path, rid))
    correct = total = 0
    for held_out in USERS:
        train = [u for u in USERS if u != held_out]
        centroids = np.stack([np.mean([features[u, au] for u in train], axis=0) for au in ACTION_UNITS])
        for k, au in enumerate(ACTION_UNITS):
            predicted = int(np.argmin(np.linalg.norm(centroids - features[held_out, au], axis=1)))
            correct += predicted == k
            total += 1
    accuracy = correct / total
    assert accuracy >= 0.25, f"accuracy {accuracy:.2f} vs chance {1 / len(ACTION_UNITS):.2f}"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_same_bytes(dataset, tmp_path):
    """A user regenerated with the same seed gives byte-identical truth, events and video; a recording's
    bytes do not depend on which other recordings are generated with it."""
    options = UserOptions(repetitions=1, free=0, reading=0, aus=(12,), au_duration_s=0.8, events=FAST_EVENTS)
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        generate_user(root, "user01", 1, SEED, options, progress=False)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert {str(f) for f in files} >= {"truth/user01.h5", "user01/AU_12/event_1.raw", "user01/AU_12/frames_1.mp4"}
    for rel in files:
        assert _digest(a / rel) == _digest(b / rel), rel
    for rel in ("user01/AU_12/event_1.raw", "user01/AU_12/frames_1.mp4"):
        assert _digest(a / rel) == _digest(dataset / rel), rel
    other = tmp_path / "other_seed"
    generate_user(other, "user01", 1, SEED + 1, options, progress=False)
    assert _digest(other / "user01/AU_12/event_1.raw") != _digest(a / "user01/AU_12/event_1.raw")


def test_jpeg_folders_carry_capture_times(tmp_path):
    """``facemorphic synth --rgb-format jpeg`` writes frame_{k}_{HH:MM:SS.ffffff}.jpg with 1/30 s steps."""
    from PIL import Image

    from facemorphic.cli import main

    assert main(["synth", "--out-dir", str(tmp_path), "--user", "u", "--user-index", "0", "--seed", str(SEED),
                 "--aus", "2", "--repetitions", "1", "--free", "0", "--reading", "0", "--au-duration", "0.5",
                 "--rgb-format", "jpeg", "--min-substeps", "2", "--max-substeps", "8", "--no-progress"]) == 0
    frames = sorted((tmp_path / "u" / "AU_2" / "frames_1").glob("frame_*.jpg"),
                    key=lambda p: int(p.stem.split("_")[1]))
    truth = read_truth(tmp_path / "truth" / "u.h5", "u_AU_2_1")
    assert len(frames) == len(truth["rgb_times_s"]) == 15
    stamps = []
    for p in frames:
        hh, mm, ss = p.stem.split("_", 2)[2].split(":")
        stamps.append(int(hh) * 3600 + int(mm) * 60 + float(ss))
    np.testing.assert_allclose(np.array(stamps) - stamps[0], truth["rgb_times_s"], atol=1e-6)
    assert Image.open(frames[0]).size == (640, 480)


def test_rerun_replaces_its_own_user_and_refuses_foreign_folders(tmp_path):
    """A smaller rerun leaves no stale recording behind; a folder the generator did not make is kept."""
    from facemorphic.errors import FacemorphicError

    two = UserOptions(repetitions=2, free=0, reading=0, aus=(4,), au_duration_s=0.3, events=FAST_EVENTS)
    generate_user(tmp_path, "u", 0, SEED, two, progress=False)
    assert (tmp_path / "u" / "AU_4" / "event_2.raw").is_file()
    generate_user(tmp_path, "u", 0, SEED, UserOptions(repetitions=1, free=0, reading=0, aus=(4,),
                                                      au_duration_s=0.3, events=FAST_EVENTS), progress=False)
    assert sorted(p.name for p in (tmp_path / "u" / "AU_4").iterdir()) == ["event_1.raw", "frames_1.mp4"]
    assert list_recordings(tmp_path / "truth" / "u.h5") == ["u_AU_4_1"]
    assert not (tmp_path / "truth" / "u.generating").exists()

    foreign = tmp_path / "real_user" / "AU_1"
    foreign.mkdir(parents=True)
    (foreign / "event_1.raw").write_bytes(b"% evt 3.0\n")
    with pytest.raises(FacemorphicError, match="not made by"):
        generate_user(tmp_path, "real_user", 1, SEED, two, progress=False)
    assert (foreign / "event_1.raw").read_bytes() == b"% evt 3.0\n"
