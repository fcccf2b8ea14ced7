"""One synthetic user's recordings in the FACEMORPHIC layout, with their sync table and truth file.

Layout (DESIGN.md), repetitions numbered from 1::

    {root}/{user}/AU_{n}/event_{rep}.raw + frames_{rep}.mp4   (or frames_{rep}/frame_{k}_{HH:MM:SS.ffffff}.jpg)
    {root}/{user}/AU_FREE/...        free interaction
    {root}/{user}/AU_READING/...     sentence reading, with sentences.txt (line i: the i-th repetition)
    {root}/{user}/sync.csv           recording_id,event_offset_us (true event-clock time of RGB time zero)
    {root}/truth/{user}.h5           one group per recording_id (see :func:`write_user_truth`)

Every random choice comes from ``numpy.random.SeedSequence([seed, user_index, ...])``: the user's scene,
identity and sensor from one stream, each recording from its own stream keyed by its folder and
repetition, so a user, and each of its recordings, comes out the same whatever else is generated.
The truth file and sync.csv are written last (atomically), so their presence marks a complete user;
``{root}/truth/{user}.generating`` marks a run in progress. A rerun first removes the user's previous
folder (only if the truth file or the marker shows that this generator made it), so recordings of an
earlier, larger configuration never linger.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import FacemorphicError
from ..fileio import atomic_path, write_text_atomic
from ..options import defaults
from .esim import sensor_thresholds
from .face import N_IDENTITY, face_model
from .motion import SENTENCES, au_script, free_script, reading_script
from .options import SynthOptions
from .recording import EventOptions, generate_recording
from .scene import EVENT_SIZE, make_scene

log = logging.getLogger(__name__)
#: Bumped when the generator's output changes for the same seed.
GENERATOR_VERSION = 3
_COMPRESSION = dict(compression="gzip", compression_opts=4, track_times=False)
_SYNTH = defaults(SynthOptions)


@dataclass(frozen=True)
class UserOptions:
    """What to generate for one user; defaults from :class:`~.options.SynthOptions`, their one source."""

    repetitions: int = _SYNTH["repetitions"]
    free: int = _SYNTH["free"]
    reading: int = _SYNTH["reading"]
    aus: tuple[int, ...] = tuple(_SYNTH["aus"])
    au_duration_s: float = _SYNTH["au_duration_s"]
    free_duration_s: float = _SYNTH["free_duration_s"]
    reading_duration_s: float = _SYNTH["reading_duration_s"]
    fps: int = _SYNTH["fps"]
    rgb_format: str = _SYNTH["rgb_format"]  # mp4 or jpeg
    events: EventOptions = EventOptions()


@dataclass(frozen=True)
class PlannedRecording:
    folder: str  # AU_12, AU_FREE, AU_READING
    repetition: int
    task: str  # au, free, reading
    au: int
    key: int  # stable integer for seeding


def plan_recordings(options: UserOptions) -> list[PlannedRecording]:
    """The recordings of one user, in a fixed order."""
    plan = []
    for au in options.aus:
        for rep in range(1, options.repetitions + 1):
            plan.append(PlannedRecording(f"AU_{au}", rep, "au", int(au), int(au)))
    plan += [PlannedRecording("AU_FREE", rep, "free", 0, 1000) for rep in range(1, options.free + 1)]
    plan += [PlannedRecording("AU_READING", rep, "reading", 0, 2000) for rep in range(1, options.reading + 1)]
    return plan


def recording_id(user: str, folder: str, repetition: int) -> str:
    """``{user}_{folder}_{rep}``, the rule the ingest stage uses."""
    return f"{user}_{folder}_{int(repetition)}"


def user_sentences(seed: int, user_index: int, count: int) -> list[str]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, user_index, 7]))
    order = rng.permutation(len(SENTENCES))
    return [SENTENCES[order[i % len(SENTENCES)]] for i in range(count)]


def generate_user(root: str | Path, user: str, user_index: int, seed: int,
                  options: UserOptions = UserOptions(), progress: bool = True) -> Path:
    """Generate every recording of one user under ``root``; return the truth file's path.

    Logs one line per recording; the progress bar (``progress``) only shows on a terminal, so logs
    of a workflow run stay plain.
    """
    from tqdm import tqdm

    root = Path(root)
    user_dir = root / user
    _clear_previous_run(root, user)
    marker = root / "truth" / f"{user}.generating"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    user_rng = np.random.default_rng(np.random.SeedSequence([seed, user_index, 0]))
    scene = make_scene(user_rng)
    identity = np.clip(user_rng.standard_normal(N_IDENTITY), -2.5, 2.5)
    thresholds = sensor_thresholds(user_rng, *EVENT_SIZE, options.events.contrast, options.events.contrast_sigma)
    model = face_model()
    sentences = user_sentences(seed, user_index, options.reading)

    plan = plan_recordings(options)
    truths = {}
    show_bar = progress and sys.stderr.isatty()
    for i, rec in enumerate(tqdm(plan, desc=f"synth {user}", unit="rec", disable=not show_bar)):
        started = time.perf_counter()
        rng = np.random.default_rng(np.random.SeedSequence([seed, user_index, 1, rec.key, rec.repetition]))
        if rec.task == "au":
            script = au_script(rng, rec.au, options.au_duration_s)
        elif rec.task == "free":
            script = free_script(rng, options.free_duration_s)
        else:
            script = reading_script(rng, options.reading_duration_s)
        offset_us = int(rng.integers(50_000, 250_000))
        folder = user_dir / rec.folder
        folder.mkdir(parents=True, exist_ok=True)
        rgb_name = f"frames_{rec.repetition}" + (".mp4" if options.rgb_format == "mp4" else "")
        rgb_path = folder / rgb_name
        wall_start = dt.datetime(2024, 1, 1, 9, 0, 0) + dt.timedelta(minutes=i, seconds=int(rng.integers(0, 50)))
        truth = generate_recording(model, scene, identity, script, thresholds, rng, rgb_path,
                                   folder / f"event_{rec.repetition}.raw", offset_us, options.events,
                                   fps=options.fps, rgb_format=options.rgb_format, wall_start=wall_start)
        sentence = sentences[rec.repetition - 1] if rec.task == "reading" else ""
        seconds = time.perf_counter() - started
        length_s = len(truth.rgb_times_s) / options.fps
        log.info("%s: %d frames, %d events, %d event renders, %.2f s, %.2fx real time",
                 recording_id(user, rec.folder, rec.repetition), len(truth.rgb_times_s), truth.n_events,
                 truth.n_event_renders, seconds, length_s / seconds)
        truths[recording_id(user, rec.folder, rec.repetition)] = (rec, script, offset_us, sentence, truth)

    if options.reading:
        write_text_atomic(user_dir / "AU_READING" / "sentences.txt", "\n".join(sentences) + "\n")
    truth_path = root / "truth" / f"{user}.h5"
    write_user_truth(truth_path, user, user_index, seed, identity, scene, options, truths)
    lines = ["recording_id,event_offset_us"] + [f"{rid},{v[2]}" for rid, v in truths.items()]
    write_text_atomic(user_dir / "sync.csv", "\n".join(lines) + "\n")
    marker.unlink()
    return truth_path


def _clear_previous_run(root: Path, user: str) -> None:
    """Remove a previous synthetic run of ``user`` so no stale recording survives a smaller config.

    Only a folder this generator made is removed: one whose truth file or in-progress marker exists
    under ``{root}/truth/``; anything else (a real recording folder given by mistake) is an error.
    """
    import shutil

    user_dir = root / user
    if not user_dir.exists():
        return
    ours = (root / "truth" / f"{user}.h5").exists() or (root / "truth" / f"{user}.generating").exists()
    if not ours and any(user_dir.iterdir()):
        raise FacemorphicError(f"{user_dir}: exists and was not made by 'facemorphic synth' (no "
                               f"{root / 'truth' / (user + '.h5')}); refusing to overwrite it")
    shutil.rmtree(user_dir)


def _camera_attrs(camera) -> str:
    return json.dumps({"focal_px": camera.focal, "cx": camera.cx, "cy": camera.cy,
                       "rotation_world_to_camera": camera.rotation.tolist(),
                       "position_m": camera.position.tolist(), "width": camera.width, "height": camera.height})


def write_user_truth(path: Path, user: str, user_index: int, seed: int, identity: np.ndarray, scene,
                     options: UserOptions, truths: dict) -> None:
    """Write ``{root}/truth/{user}.h5``.

    Root: dataset ``identity`` float32 [K_id]; attrs ``user``, ``user_index``, ``seed``,
    ``generator_version``, ``rgb_camera`` / ``event_camera`` (JSON pinhole parameters: world ->
    camera rotation, position, focal length, principal point), ``options`` (JSON).
    One group per recording_id: ``landmarks_rgb`` float32 [T, 68, 2] (RGB pixels, iBUG-68),
    ``landmarks_event`` float32 [T, 68, 2] (sensor pixels), ``au_intensity`` float32 [T, 24]
    (facemorphic.ACTION_UNITS order), ``head_pose`` float32 [T, 3] (yaw, pitch, roll degrees),
    ``rgb_times_s`` float64 [T]; attrs ``event_offset_us``, ``task``, ``au`` (0 for free/reading),
    ``repetition``, ``sentence``, ``duration_s``, ``n_events``, ``event_window`` (x0, y0, w, h),
    ``event_render_hz``, ``script`` (JSON: every activation's au/start/onset/hold/offset/peak).
    """
    import h5py

    with atomic_path(path) as tmp, h5py.File(tmp, "w", track_order=False) as h5:
        h5.attrs.update({"user": user, "user_index": int(user_index), "seed": int(seed),
                         "generator_version": GENERATOR_VERSION,
                         "rgb_camera": _camera_attrs(scene.rgb_camera),
                         "event_camera": _camera_attrs(scene.event_camera),
                         "options": json.dumps(asdict(options))})
        h5.create_dataset("identity", data=identity.astype(np.float32), track_times=False)
        for rid, (rec, script, offset_us, sentence, truth) in truths.items():
            g = h5.create_group(rid)
            g.create_dataset("landmarks_rgb", data=truth.landmarks_rgb, **_COMPRESSION)
            g.create_dataset("landmarks_event", data=truth.landmarks_event, **_COMPRESSION)
            g.create_dataset("au_intensity", data=truth.au_intensity, **_COMPRESSION)
            g.create_dataset("head_pose", data=truth.head_pose, **_COMPRESSION)
            g.create_dataset("rgb_times_s", data=truth.rgb_times_s, **_COMPRESSION)
            g.attrs.update({"event_offset_us": int(offset_us), "task": rec.task, "au": int(rec.au),
                            "repetition": int(rec.repetition), "sentence": sentence,
                            "duration_s": float(len(truth.rgb_times_s) / options.fps),
                            "n_events": int(truth.n_events), "event_window": np.asarray(truth.event_window),
                            "event_render_hz": truth.event_render_hz, "script": json.dumps(script.describe())})
