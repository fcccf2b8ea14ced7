"""``facemorphic predict``: apply a trained run to a new recording.

Writes the per-frame CSV (``time_us``: event-clock end of the frame's window, as ``t_end_us`` in the events
file; ``p_AU1`` .. ``p_AU56``; ``alpha_00`` .. predicted 3DMM AU coefficients, in the units the run was
trained on: training stores no coefficient statistics, so these are as predicted), a JSON beside it with
the recording's AU decision, and with ``--video`` a Figure-3 style MP4.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..options import add_options, build_options, options_from_args
from .options import PredictOptions

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="a training run folder (results/runs/{experiment}/seed-{seed})")
    parser.add_argument("--raw", default=None, help="the recording's Prophesee RAW (or DAT) file")
    parser.add_argument("--rgb", default=None, help="the recording's RGB video or JPEG folder: frames at its times")
    parser.add_argument("--event-offset-us", type=int, default=None,
                        help="event-clock time of RGB time zero (the manifest's event_offset_us); needs --rgb")
    parser.add_argument("--events-options", default="{}", metavar="JSON",
                        help="the events config block the run's frames were made with (defaults: the events "
                             "stage's)")
    parser.add_argument("--out-csv", default=None, help="per-frame predictions (with --raw)")
    parser.add_argument("--manifest", default=None, help="instead of --raw: predict every recording of --split in "
                                                         "this manifest (RGB path and event_offset_us from it)")
    parser.add_argument("--split", default="test", help="the manifest split to predict (with --manifest)")
    parser.add_argument("--out-dir", default=None, help="with --manifest: {recording_id}.csv/.json per recording "
                                                        "and decisions.csv")
    parser.add_argument("--out-json", default=None, help="the recording's AU decision (default: beside the CSV, "
                                                         ".json)")
    parser.add_argument("--video", default=None, help="write a Figure-3 style MP4 here")
    parser.add_argument("--model", default=None, help="the morphable model (results/morphable/model.h5) for the "
                                                      "mesh panel of --video")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    add_options(parser, PredictOptions, title="predict options")


def _events_options(text: str):
    from ..errors import FacemorphicError
    from ..events.options import EventsOptions

    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FacemorphicError(f"--events-options is not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(values, dict):
        raise FacemorphicError("--events-options must be a JSON object")
    return build_options(EventsOptions, values)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..errors import FacemorphicError
    from ..fileio import write_csv_atomic, write_text_atomic
    from ..video.writer import write_mp4
    from .figure import figure_frames
    from .recording import (
        display_event_images,
        predict_manifest,
        predict_recording,
        rgb_images,
    )
    from .trained import load_trained_run

    options = options_from_args(PredictOptions, args)
    events_options = _events_options(args.events_options)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.video and args.model is None:
        raise FacemorphicError("--video draws the mesh of the predicted coefficients: it needs --model")
    morphable = None
    run_folder = load_trained_run(args.run)
    if args.video:
        from ..errors import InputFileError
        from ..morphable.model import load_model

        morphable = load_model(args.model)
        if morphable.au_basis.shape[1] != run_folder.n_coefficients:
            raise InputFileError(args.model, f"{morphable.au_basis.shape[1]} AU components, but the run predicts "
                                             f"{run_folder.n_coefficients} coefficients")
    if args.manifest:
        if not args.out_dir or args.raw or args.video:
            raise FacemorphicError("--manifest writes into --out-dir; --raw and --video are for one recording")
        decisions = predict_manifest(run_folder, Path(args.manifest), args.split, Path(args.out_dir), options,
                                     events_options)
        log.info("%d %s recordings predicted, %d correct", len(decisions), args.split,
                 int(decisions["correct"].sum()) if len(decisions) else 0)
        return 0
    if not args.raw or not args.out_csv:
        raise FacemorphicError("give --raw and --out-csv (one recording) or --manifest and --out-dir")
    result = predict_recording(run_folder, args.raw, options, events_options, args.rgb, args.event_offset_us)
    out_csv = Path(args.out_csv)
    write_csv_atomic(result.table, out_csv)
    decision = {"run": str(args.run), "raw": str(args.raw), "rgb": args.rgb, "checkpoint": str(run_folder.checkpoint),
                **result.prediction.decision()}
    out_json = Path(args.out_json) if args.out_json else out_csv.with_suffix(".json")
    write_text_atomic(out_json, json.dumps(decision, indent=2) + "\n")
    log.info("%s: AU%d (p=%.3f) over %d frames, %d windows", args.raw, decision["au"], decision["probability"],
             decision["n_frames"], decision["n_windows"])
    if args.video:
        height = options.video_height // 2 * 2
        frames = figure_frames(display_event_images(args.raw, result.windows, events_options),
                               result.prediction.alpha, result.prediction.probabilities, decision["label"], height,
                               morphable, rgb_images(args.rgb) if args.rgb else None)
        fps = options.fps
        if args.rgb and len(result.table) > 1:  # the RGB stream's own rate
            fps = 1e6 / max(float(result.table["time_us"].diff().median()), 1.0)
        count = write_mp4(args.video, frames, fps=fps)
        log.info("wrote %s (%d frames)", args.video, count)
    return 0
