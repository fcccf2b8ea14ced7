"""Predict one recording with a trained run: windows, frames, network, per-frame table and decision."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from ..errors import FacemorphicError
from ..events.alignment import FrameWindows
from ..events.options import EventsOptions
from ..shards.frames import events_to_three_channels, read_rgb_frames
from .frames import (FRAME_BLOCK, check_event_layout, event_frame_blocks, fixed_rate_windows, model_event_frames,
                     rgb_windows)
from .infer import Prediction, frame_inputs, prediction_frame, run_windows
from .options import PredictOptions
from .trained import TrainedRun

log = logging.getLogger(__name__)


@dataclass
class RecordingPrediction:
    table: pd.DataFrame  # the per-frame CSV
    prediction: Prediction
    windows: FrameWindows


def recording_windows(raw_path, rgb_path, options: PredictOptions, events_options: EventsOptions,
                      event_offset_us: int | None) -> FrameWindows:
    """At the RGB frame times when an RGB stream is given, else at ``options.fps`` (module :mod:`.frames`)."""
    if rgb_path is None:
        if event_offset_us is not None:
            raise FacemorphicError("--event-offset-us places RGB frames on the event clock; it needs --rgb")
        return fixed_rate_windows(raw_path, options.fps, events_options)
    from ..video import read_frame_times

    return rgb_windows(raw_path, read_frame_times(rgb_path), events_options, options.sync, event_offset_us)


def predict_recording(run: TrainedRun, raw_path: str | Path, options: PredictOptions,
                      events_options: EventsOptions, rgb_path: str | Path | None = None,
                      event_offset_us: int | None = None) -> RecordingPrediction:
    """Per-frame probabilities and coefficients of the run's network over one RAW (and RGB) recording."""
    if run.modality == "rgb" and rgb_path is None:
        raise FacemorphicError(f"{run.run_dir}: the run reads RGB frames; give the recording's --rgb")
    windows = recording_windows(raw_path, rgb_path, options, events_options, event_offset_us)
    if run.modality == "events":
        check_event_layout(events_options, run.event_representation, run.event_subwindows,
                           run.event_channels_per_subwindow, str(run.run_dir))
        blocks = model_event_frames(event_frame_blocks(raw_path, windows, events_options), run.size, run.crop,
                                    run.event_subwindows, run.event_channels_per_subwindow)
    else:
        frames, missing = read_rgb_frames(rgb_path, run.size, run.crop)
        if missing:
            log.warning("%s: %d RGB frames undecodable (previous frame repeated)", rgb_path, missing)
        if len(frames) != windows.n_frames:
            raise FacemorphicError(f"{rgb_path}: {len(frames)} decoded frames but {windows.n_frames} frame times")
        blocks = (frames[i:i + FRAME_BLOCK] for i in range(0, len(frames), FRAME_BLOCK))
    model = run.module.model
    inputs = frame_inputs(model, blocks)
    prediction = run_windows(model, inputs, run.clip_length, options.stride, options.batch_windows,
                             run.n_coefficients)
    return RecordingPrediction(prediction_frame(prediction, windows.frame_ends), prediction, windows)


def display_event_images(raw_path, windows: FrameWindows, events_options: EventsOptions) -> Iterator[np.ndarray]:
    """Full-size event frames as RGB images ``[H, W, 3]`` for the video (the 3-channel mapping of the
    shards, at the events stage's frame size)."""
    rep = events_options.build_representation()
    for block in event_frame_blocks(raw_path, windows, events_options):
        for image in events_to_three_channels(block, windows.subwindows, rep.channels):
            yield image.transpose(1, 2, 0)


def rgb_images(rgb_path) -> Iterator[np.ndarray]:
    """Decoded RGB frames in order (the project's shared reader)."""
    from ..video.reader import open_rgb

    for batch in open_rgb(rgb_path).batches(FRAME_BLOCK):
        yield from batch.images


#: manifest columns ``predict --manifest`` reads (``offset_source`` too when present)
MANIFEST_NEEDS = ("recording_id", "task", "split", "au", "raw_path", "rgb_path", "event_offset_us")


def predict_manifest(run: TrainedRun, manifest_path: Path, split: str, out_dir: Path, options: PredictOptions,
                     events_options: EventsOptions) -> pd.DataFrame:
    """Predict every AU recording of ``split``: ``{recording_id}.csv`` / ``.json`` in ``out_dir`` and
    ``decisions.csv`` (one row per recording with its true AU). Windows follow the manifest as the events
    stage does: trigger edges when ``offset_source`` is ``triggers``, else RGB times + ``event_offset_us``."""
    import dataclasses
    import json

    from ..dataset.manifest import read_manifest
    from ..events.triggers import TRIGGER_OFFSET_SOURCE
    from ..fileio import write_csv_atomic, write_text_atomic

    manifest = read_manifest(manifest_path, MANIFEST_NEEDS)
    rows = manifest[(manifest["split"] == split) & (manifest["task"] == "au")].sort_values("recording_id")
    decisions = []
    for row in rows.itertuples(index=False):
        by_triggers = str(getattr(row, "offset_source", "")) == TRIGGER_OFFSET_SOURCE
        row_options = dataclasses.replace(options, sync="triggers" if by_triggers else "first_event")
        result = predict_recording(run, row.raw_path, row_options, events_options, row.rgb_path,
                                   None if by_triggers else int(row.event_offset_us))
        decision = {"recording_id": str(row.recording_id), "true_au": int(row.au), **result.prediction.decision()}
        decision["correct"] = decision["au"] == decision["true_au"]
        write_csv_atomic(result.table, out_dir / f"{row.recording_id}.csv")
        write_text_atomic(out_dir / f"{row.recording_id}.json", json.dumps(decision, indent=2) + "\n")
        decisions.append(decision)
    table = pd.DataFrame(decisions, columns=["recording_id", "true_au", "au", "label", "probability", "n_frames",
                                             "n_windows", "correct"])
    write_csv_atomic(table, out_dir / "decisions.csv")
    return table
