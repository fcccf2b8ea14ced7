"""Ingest: discovery, probing, rejects, sync offsets and splits, on small datasets made here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from facemorphic.dataset.ingest import ingest_user, merge_manifests
from facemorphic.dataset.layout import discover_user, list_users
from facemorphic.dataset.manifest import MANIFEST_COLUMNS
from facemorphic.dataset.splits import assign_splits
from facemorphic.video import parse_jpeg_frame_name, probe_rgb

from media import random_events, write_evt3_simple, write_jpeg_folder, write_mp4

EVENTS = random_events(200, 1_234_567, 500_000, seed=1)
FIRST_EVENT_US = int(EVENTS["t"][0])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Two users in the FACEMORPHIC layout with every kind of bad input beside good recordings."""
    root = tmp_path_factory.mktemp("dataset")
    ev = EVENTS
    # user alice: good recordings of each kind
    a = root / "alice"
    write_evt3_simple(a / "AU_12" / "event_1.raw", ev)
    write_mp4(a / "AU_12" / "frames_1.mp4", n_frames=12)
    jitter = np.array([0, 0.033, 0.068, 0.1, 0.134, 0.166, 0.2, 0.235])
    write_evt3_simple(a / "AU_12" / "event_2.raw", ev)
    write_jpeg_folder(a / "AU_12" / "frames_2", jitter)
    write_evt3_simple(a / "AU_FREE" / "event_1.raw", ev)
    write_mp4(a / "AU_FREE" / "frames_1.mp4", n_frames=5)
    for rep in (1, 2):
        write_evt3_simple(a / "AU_READING" / f"event_{rep}.raw", ev)
        write_mp4(a / "AU_READING" / f"frames_{rep}.mp4", n_frames=4)
    (a / "AU_READING" / "sentences.txt").write_text("The quick brown fox.\nA second sentence.\n")
    # user bob: one good recording and every bad case
    b = root / "bob"
    write_evt3_simple(b / "AU_1" / "event_1.raw", ev)
    write_mp4(b / "AU_1" / "frames_1.mp4", n_frames=6)
    (b / "AU_1" / "event_2.raw").write_bytes(b"this is not a RAW file\n" * 4)  # bad header
    write_mp4(b / "AU_1" / "frames_2.mp4", n_frames=6)
    write_evt3_simple(b / "AU_2" / "event_1.raw", ev)  # RAW without RGB
    write_mp4(b / "AU_4" / "frames_1.mp4", n_frames=3)  # RGB without RAW
    write_evt3_simple(b / "AU_99" / "event_1.raw", ev)  # AU outside the 24
    write_mp4(b / "AU_99" / "frames_1.mp4", n_frames=3)
    (b / "AU_SMILE").mkdir()  # unknown folder name
    write_evt3_simple(b / "AU_6" / "event_1.raw", ev)  # duplicate ids: event_1 and event_01
    write_evt3_simple(b / "AU_6" / "event_01.raw", ev)
    write_mp4(b / "AU_6" / "frames_1.mp4", n_frames=3)
    write_evt3_simple(b / "AU_7" / "event_1.raw", ev)  # JPEG names without a time
    (b / "AU_7" / "frames_1").mkdir()
    (b / "AU_7" / "frames_1" / "img_0001.jpg").write_bytes(b"\xff\xd8")
    write_evt3_simple(b / "AU_9" / "event_1.raw", ev)  # RGB file with no frames
    (b / "AU_9" / "frames_1.mp4").write_bytes(b"")
    cut = write_evt3_simple(b / "AU_10" / "event_1.raw", ev)  # header cut before its end
    cut.write_bytes(cut.read_bytes()[:60])
    write_mp4(b / "AU_10" / "frames_1.mp4", n_frames=3)
    (b / "AU_10" / "notes.docx").write_bytes(b"x")  # stray file
    (root / "truth").mkdir()  # not a user: holds no AU_* folder
    return root


def rows_by_id(frame: pd.DataFrame) -> dict:
    return {r["recording_id"]: r for r in frame.to_dict("records")}


def test_list_users_skips_non_user_folders(dataset):
    assert list_users(dataset) == ["alice", "bob"]


def test_good_recordings_are_probed_row_by_row(dataset):
    rows, rejects = ingest_user(dataset, "alice", progress=False)
    assert rejects.empty, rejects.to_dict("records")
    got = rows_by_id(rows)
    assert sorted(got) == ["alice_AU_12_1", "alice_AU_12_2", "alice_AU_FREE_1", "alice_AU_READING_1",
                           "alice_AU_READING_2"]
    mp4 = got["alice_AU_12_1"]
    assert (mp4["task"], mp4["au"], mp4["repetition"]) == ("au", 12, 1)
    assert (mp4["rgb_frames"], mp4["rgb_width"], mp4["rgb_height"]) == (12, 64, 48)
    assert mp4["rgb_fps"] == pytest.approx(30.0, rel=1e-3)
    assert mp4["duration_s"] == pytest.approx(12 / 30, rel=1e-3)
    assert (mp4["event_width"], mp4["event_height"], mp4["event_format"]) == (1280, 720, "EVT3")
    assert mp4["event_offset_us"] == FIRST_EVENT_US and mp4["offset_source"] == "first_event_guess"
    jpeg = got["alice_AU_12_2"]
    assert jpeg["rgb_frames"] == 8
    # median period of the jittered times: sorted diffs are 0.032..0.035, median 0.0335
    assert jpeg["rgb_fps"] == pytest.approx(1 / np.median(np.diff([0, 0.033, 0.068, 0.1, 0.134, 0.166, 0.2, 0.235])),
                                            rel=1e-6)
    assert got["alice_AU_FREE_1"]["task"] == "free" and got["alice_AU_FREE_1"]["au"] == 0
    assert got["alice_AU_READING_1"]["sentence"] == "The quick brown fox."
    assert got["alice_AU_READING_2"]["sentence"] == "A second sentence."


def test_every_bad_input_is_rejected_with_its_reason(dataset):
    rows, rejects = ingest_user(dataset, "bob", progress=False)
    assert list(rows["recording_id"]) == ["bob_AU_1_1"]
    reasons = {(r["path"].split(str(dataset) + "/")[1]): r["reason"] for r in rejects.to_dict("records")}
    expected = {
        "bob/AU_1/event_2.raw": "RAW:",
        "bob/AU_2/event_1.raw": "without its RGB partner",
        "bob/AU_4/frames_1.mp4": "without its RAW partner",
        "bob/AU_99": "AU 99 is not one of the 24",
        "bob/AU_SMILE": "unknown folder name",
        "bob/AU_6/event_1.raw": "duplicate recording id bob_AU_6_1",
        "bob/AU_6/event_01.raw": "duplicate recording id bob_AU_6_1",
        "bob/AU_6/frames_1.mp4": "duplicate recording id bob_AU_6_1",
        "bob/AU_7/frames_1/img_0001.jpg": "does not match frame_",
        "bob/AU_9/frames_1.mp4": "RGB:",
        "bob/AU_10/event_1.raw": "RAW:",
        "bob/AU_10/notes.docx": "unrecognised name",
    }
    assert set(reasons) == set(expected), reasons
    for path, fragment in expected.items():
        assert fragment in reasons[path], (path, reasons[path])


def test_sync_csv_overrides_the_first_event_offset(dataset, tmp_path):
    rows, _ = ingest_user(dataset, "alice", sync_offsets={"alice_AU_12_2": 42}, progress=False)
    got = rows_by_id(rows)
    assert got["alice_AU_12_2"]["event_offset_us"] == 42 and got["alice_AU_12_2"]["offset_source"] == "sync_csv"
    assert got["alice_AU_12_1"]["event_offset_us"] == FIRST_EVENT_US


def test_discovery_pairs_by_name_only(dataset):
    candidates, rejections = discover_user(dataset, "alice")
    assert [c.rgb_path.name for c in candidates] == ["frames_1.mp4", "frames_2", "frames_1.mp4", "frames_1.mp4",
                                                      "frames_2.mp4"]
    assert not rejections


def test_jpeg_names_and_probe_times(tmp_path):
    assert parse_jpeg_frame_name("frame_12_10:15:30.250000.jpg") == (12, 10 * 3600 + 15 * 60 + 30.25)
    with pytest.raises(ValueError):
        parse_jpeg_frame_name("frame_12.jpg")
    times = np.array([0.0, 0.04, 0.07, 0.1])
    info = probe_rgb(write_jpeg_folder(tmp_path / "frames_1", times))
    np.testing.assert_allclose(info.times_s, times, atol=1e-6)


def test_mp4_probe_times_are_the_container_timestamps(tmp_path):
    info = probe_rgb(write_mp4(tmp_path / "v.mp4", n_frames=10, fps=25))
    np.testing.assert_allclose(info.times_s, np.arange(10) / 25, atol=1e-6)


def _manifest(n_users=10, reps=2, aus=(1, 2, 4, 6, 12)):
    rows = []
    for u in range(n_users):
        for au in aus:
            for rep in range(1, reps + 1):
                rows.append({"recording_id": f"u{u}_AU_{au}_{rep}", "user": f"u{u}", "task": "au", "au": au})
        rows.append({"recording_id": f"u{u}_AU_FREE_1", "user": f"u{u}", "task": "free", "au": 0})
    return pd.DataFrame(rows)


def test_video_split_is_seeded_and_stratified():
    m = _manifest()
    a, b = assign_splits(m, "video", 0.2, seed=3), assign_splits(m, "video", 0.2, seed=3)
    assert (a == b).all()
    assert (a != assign_splits(m, "video", 0.2, seed=4)).any()
    m["split"] = a
    per_stratum = m[m.task == "au"].groupby("au")["split"].apply(lambda s: (s == "test").sum())
    assert (per_stratum == 4).all()  # 20 recordings of every AU, 20% of them in test
    assert (m[m.task == "free"]["split"] == "test").sum() == 2


def test_subject_split_shares_no_user():
    m = _manifest()
    m["split"] = assign_splits(m, "subject", 0.2, seed=0)
    test_users = set(m[m.split == "test"].user)
    train_users = set(m[m.split == "train"].user)
    assert len(test_users) == 2 and not test_users & train_users
    assert len(train_users) == 8


def test_split_is_stable_when_a_recording_is_added():
    m = _manifest()
    before = pd.Series(assign_splits(m, "video", 0.2, seed=0), index=m.recording_id)
    extra = pd.concat([m, pd.DataFrame([{"recording_id": "u99_AU_12_1", "user": "u99", "task": "au", "au": 12}])])
    after = pd.Series(assign_splits(extra, "video", 0.2, seed=0), index=extra.recording_id)
    changed = (before != after.loc[before.index]).sum()
    assert changed <= 1


def test_merge_writes_all_columns_and_rejects(dataset, tmp_path):
    for user in ("alice", "bob"):
        rows, rejects = ingest_user(dataset, user, progress=False)
        rows.to_csv(tmp_path / f"{user}.csv", index=False)
        rejects.to_csv(tmp_path / f"{user}.rejects.csv", index=False)
    manifest, rejects = merge_manifests([tmp_path / "alice.csv", tmp_path / "bob.csv"],
                                        [tmp_path / "alice.rejects.csv", tmp_path / "bob.rejects.csv"],
                                        "subject", 0.5, 0)
    assert list(manifest.columns) == MANIFEST_COLUMNS
    assert len(manifest) == 6 and len(rejects) == 12
    assert set(manifest.groupby("user")["split"].agg(set).map(frozenset)) == {frozenset({"train"}),
                                                                              frozenset({"test"})}
