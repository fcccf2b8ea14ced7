"""One folder dataset holding every reported kind of bad input beside good recordings, run through the
Snakemake pipeline up to ``results/quality.csv``, the shards and the tables (one coefficient model): every bad file must end in
``rejects.csv`` or be flagged in ``quality.csv`` with its reason, a user whose every recording is rejected
must get empty per-user outputs, and the good recordings must reach the shards.

The faces are the real annotated photograph ``takeo.ppm`` (so dlib finds a face in every good frame);
the events are hand-encoded EVT 3.0 (tests/media.py) except one real EVT 2.0 Gen3 file whose header has
no geometry, so its sensor size is guessed from the plugin name.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import av
import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from facemorphic.quality.table import read_quality
from media import random_events, write_evt3_simple, write_jpeg_folder

REPO = Path(__file__).resolve().parents[1]
N_FRAMES = 15
FPS = 30
RGB_SPAN_US = N_FRAMES * 1_000_000 // FPS


def face_frames(shared_data: Path) -> list[np.ndarray]:
    """The takeo photograph (cropped to even sides for H.264), slightly shifted per frame."""
    face = np.asarray(Image.open(shared_data / "faces" / "takeo.ppm").convert("RGB"))[:224, :150]
    return [np.roll(face, k % 3, axis=1) for k in range(N_FRAMES)]


def write_face_mp4(path: Path, frames: list[np.ndarray]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_face_jpegs(folder: Path, frames: list[np.ndarray], drop: tuple[int, ...] = ()) -> Path:
    write_jpeg_folder(folder, np.arange(N_FRAMES) / FPS)
    for k, file in enumerate(sorted(folder.iterdir(), key=lambda p: int(p.name.split("_")[1]))):
        if k in drop:
            file.unlink()
        else:
            Image.fromarray(frames[k]).save(file, quality=90)
    return folder


def conceal_damage(path: Path) -> None:
    """Flip the second half of three P-frame packets: FFmpeg conceals it and raises nothing."""
    with av.open(str(path)) as container:
        packets = [(p.pos, p.size) for p in container.demux(container.streams.video[0]) if p.size > 0]
    data = bytearray(path.read_bytes())
    for pos, size in packets[3:6]:
        for i in range(pos + size // 2, pos + size - 2):
            data[i] ^= 0x55
    path.write_bytes(bytes(data))


def full_events(path: Path, seed: int, duration_us: int = RGB_SPAN_US + 20_000) -> Path:
    return write_evt3_simple(path, random_events(4000, 1_000, duration_us, seed=seed))


def build_dataset(root: Path, shared_data: Path) -> dict[str, str]:
    """The dataset; returns {what: path or recording id} of each bad case, for the assertions."""
    frames = face_frames(shared_data)
    good, bad, empty = root / "good", root / "bad", root / "empty"
    for au, rep in ((1, 1), (1, 2), (12, 1), (12, 2)):
        full_events(good / f"AU_{au}" / f"event_{rep}.raw", seed=au * 10 + rep)
        write_face_mp4(good / f"AU_{au}" / f"frames_{rep}.mp4", frames)
    full_events(good / "AU_2" / "event_1.raw", seed=21)
    write_face_jpegs(good / "AU_2" / "frames_1", frames, drop=(4, 9, 10))
    shutil.copy(shared_data / "events" / "evt2_gen3_640x480_expelliarmus_sample.raw", good / "AU_2" / "event_2.raw")
    write_face_mp4(good / "AU_2" / "frames_2.mp4", frames)

    # RAW far shorter than its RGB stream: events for the first 5% only
    full_events(bad / "AU_1" / "event_1.raw", seed=1, duration_us=RGB_SPAN_US // 20)
    write_face_mp4(bad / "AU_1" / "frames_1.mp4", frames)
    # truncated RAW: cut inside a word at 70% of the data
    raw = full_events(bad / "AU_1" / "event_2.raw", seed=2)
    raw.write_bytes(raw.read_bytes()[: int(raw.stat().st_size * 0.7) | 1])
    write_face_mp4(bad / "AU_1" / "frames_2.mp4", frames)
    # corrupted MP4 that decodes with concealment
    full_events(bad / "AU_4" / "event_1.raw", seed=3)
    conceal_damage(write_face_mp4(bad / "AU_4" / "frames_1.mp4", frames))
    # sync.csv with a non-numeric offset for AU_6_1 (AU_6_2 has a good one)
    for rep in (1, 2):
        full_events(bad / "AU_6" / f"event_{rep}.raw", seed=4 + rep)
        write_face_mp4(bad / "AU_6" / f"frames_{rep}.mp4", frames)
    (bad / "sync.csv").write_text("recording_id,event_offset_us\nbad_AU_6_1,12ab\nbad_AU_6_2,1000\n")
    # dangling and self-looping symbolic links
    (bad / "AU_7").mkdir()
    os.symlink("missing.raw", bad / "AU_7" / "event_1.raw")
    os.symlink("frames_2.mp4", bad / "AU_7" / "frames_2.mp4")
    # a user whose every recording is rejected (empty RAW)
    (empty / "AU_1").mkdir(parents=True)
    (empty / "AU_1" / "event_1.raw").write_bytes(b"")
    write_face_mp4(empty / "AU_1" / "frames_1.mp4", frames)
    return {"short": "bad_AU_1_1", "truncated": "bad_AU_1_2", "corrupt": "bad_AU_4_1", "sync": "bad_AU_6_1",
            "dangling": str(bad / "AU_7" / "event_1.raw"), "loop": str(bad / "AU_7" / "frames_2.mp4"),
            "empty": "empty_AU_1_1", "dropped": "good_AU_2_1", "guessed": "good_AU_2_2"}


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory, shared_data):
    workdir = tmp_path_factory.mktemp("hostile")
    cases = build_dataset(workdir / "dataset", shared_data)
    config = yaml.safe_load((REPO / "tests" / "config.tiny.yaml").read_text())
    config["dataset"].update(source="folder", root=str(workdir / "dataset"))
    # one cheap model, so the good recordings go all the way to the tables
    config["experiments"] = {"coeff_lstm": {"model": "coeff_lstm", "modality": "coefficients"}}
    config["predict"] = {"experiment": "coeff_lstm"}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    targets = ["results/quality.csv", "results/shards/train/index.csv", "results/shards/test/index.csv",
               "results/tables/predictions.csv"]
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                           "--directory", str(workdir), "-c2", *targets], capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return workdir, cases


def test_every_bad_file_is_rejected_or_flagged_with_its_reason(hostile_run):
    workdir, cases = hostile_run
    rejects = pd.read_csv(workdir / "results" / "rejects.csv", dtype=str, keep_default_na=False)
    quality = read_quality(workdir / "results" / "quality.csv")
    by_path = rejects.set_index("path")["reason"]
    assert "dangling symbolic link" in by_path[cases["dangling"]]
    assert "loops" in by_path[cases["loop"]]
    by_id = rejects.set_index("recording_id")["reason"]
    assert "'12ab' is not a whole number" in by_id[cases["sync"]]
    assert "event file is empty" in by_id[cases["empty"]]

    rows = quality[quality.status != "rejected"].set_index("recording_id")
    assert not rows.loc[cases["short"], "train_ok"] and "empty" in rows.loc[cases["short"], "reason"]
    assert rows.loc[cases["short"], "empty_event_fraction"] >= 0.9
    assert "truncated" in rows.loc[cases["truncated"], "flags"] and rows.loc[cases["truncated"], "raw_truncated"]
    assert rows.loc[cases["corrupt"], "rgb_decode_errors"] > 0 and not rows.loc[cases["corrupt"], "train_ok"]
    assert rows.loc[cases["dropped"], "rgb_dropped_indices"] == "4;9-10"
    assert rows.loc[cases["guessed"], "geometry_source"] == "sensor generation"
    assert "guessed" in rows.loc[cases["guessed"], "flags"]
    assert rows.loc["bad_AU_6_2", "offset_source"] == "sync_csv" and rows.loc["bad_AU_6_2", "event_offset_us"] == 1000
    # every rejection of the ingest is a row of the quality table, with its reason
    rejected = quality[quality.status == "rejected"]
    assert sorted(rejected.path) == sorted(rejects.path)
    assert all(reason.startswith("rejected at ingest: ") for reason in rejected.reason)


def test_user_without_usable_recordings_gets_empty_outputs(hostile_run):
    workdir, _ = hostile_run
    for stage in ("events", "landmarks", "coefficients"):
        with h5py.File(workdir / "results" / stage / "empty.h5", "r") as handle:
            assert list(handle) == []


def test_good_recordings_reach_the_shards_and_flagged_ones_do_not(hostile_run):
    workdir, cases = hostile_run
    index = pd.concat([pd.read_csv(workdir / "results" / "shards" / split / "index.csv", keep_default_na=False)
                       for split in ("train", "test")]).set_index("recording_id")
    good = ["good_AU_1_1", "good_AU_1_2", "good_AU_12_1", "good_AU_12_2", "good_AU_2_1"]
    assert (index.loc[good, "status"] == "ok").all()
    # the JPEG folder lost 3 of its frames; the others keep all of theirs
    assert index.loc[good, "n_frames"].tolist() == [N_FRAMES] * 4 + [N_FRAMES - 3]
    for rid in (cases["short"], cases["corrupt"]):
        assert index.loc[rid, "status"] == "excluded" and index.loc[rid, "note"].startswith("quality: ")
    # the test split's good recordings are scored in the tables, the excluded ones are not
    scored = set(pd.read_csv(workdir / "results" / "tables" / "predictions.csv")["recording_id"])
    tested = set(index[(index.status == "ok") & (index.split == "test")].index)
    assert tested and scored == tested
