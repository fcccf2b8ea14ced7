"""A trained run folder, read back for prediction: the network with its weights, and the frame layout the
network was trained on.

``run.json`` (written by :func:`facemorphic.training.run.train_run`) gives the model, modality and
``shards_dir``; the shards' attrs give what the frames looked like: file attrs ``size`` and ``crop``, and
per sample the event layout (``event_representation``, ``event_subwindows`` S,
``event_channels_per_subwindow`` C). The weights come from ``checkpoints/best.ckpt`` when the run had a
validation split, else ``checkpoints/last.ckpt``, as training's own predictions did.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py

from .. import MODEL_INPUTS
from ..errors import FacemorphicError, InputFileError
from ..training.runfolder import read_run_json


@dataclass
class TrainedRun:
    """What predict needs from a run folder."""

    run_dir: Path
    module: object  # facemorphic.training.module.AUModule in eval mode
    model_name: str
    modality: str
    clip_length: int
    n_coefficients: int
    size: int
    crop: str
    event_representation: str | None
    event_subwindows: int | None
    event_channels_per_subwindow: int | None
    checkpoint: Path


def read_run_summary(run_dir: Path) -> dict:
    return read_run_json(run_dir, required=("model", "modality", "clip_length", "shards_dir"))


def shard_layout(shards_dir: Path, run_json: Path) -> dict:
    """``size``, ``crop`` and the event layout recorded by the run's training shards."""
    from ..shards.io import shard_files

    files = shard_files(shards_dir / "train")
    if not files:
        raise InputFileError(shards_dir / "train", f"no shard files: {run_json} names shards_dir {shards_dir}, "
                                                   "whose size, crop and event layout predict must reuse")
    with h5py.File(files[0], "r") as file:
        if "size" not in file.attrs or "crop" not in file.attrs:
            raise InputFileError(files[0], "shard file lacks the 'size' / 'crop' attrs")
        layout = {"size": int(file.attrs["size"]), "crop": str(file.attrs["crop"])}
        samples = sorted(file)
        if not samples:
            raise InputFileError(files[0], "shard file holds no sample to read the event layout from")
        attrs = file[samples[0]].attrs
        layout["event_representation"] = str(attrs["event_representation"]) if "event_representation" in attrs \
            else None
        for key in ("event_subwindows", "event_channels_per_subwindow"):
            layout[key] = int(attrs[key]) if key in attrs else None
    return layout


def load_trained_run(run_dir: str | Path) -> TrainedRun:
    """Rebuild the run's network from its checkpoint (the frozen trunk from its recorded weights or seed).

    Coefficient models are refused: they read per-frame 3DMM coefficients fitted to RGB landmarks, which a
    RAW recording alone does not give.
    """
    import torch

    from ..training.module import AUModule

    run_dir = Path(run_dir)
    summary = read_run_summary(run_dir)
    if MODEL_INPUTS.get(summary["model"]) != "frames" or summary["modality"] == "coefficients":
        raise FacemorphicError(f"{run_dir / 'run.json'}: model {summary['model']} reads {summary['modality']}, "
                               "which needs per-frame 3DMM coefficients fitted to RGB landmarks (the landmarks "
                               "and fit stages); predict only applies frame models (events or rgb modality)")
    if summary["modality"] == "rgb_face":
        raise FacemorphicError(f"{run_dir / 'run.json'}: the run was trained on RGB cropped to the face (rgb_face); "
                               "predict reads event frames or full-view RGB frames only")
    checkpoint = run_dir / "checkpoints" / "best.ckpt"
    if not checkpoint.is_file():
        checkpoint = run_dir / "checkpoints" / "last.ckpt"
    if not checkpoint.is_file():
        raise InputFileError(run_dir / "checkpoints", "no best.ckpt or last.ckpt")
    layout = shard_layout(Path(summary["shards_dir"]), run_dir / "run.json")
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    hparams = dict(state.get("hyper_parameters", {}))
    if hparams.get("model_name") != summary["model"]:
        raise InputFileError(checkpoint, f"checkpoint holds model {hparams.get('model_name')!r}, run.json says "
                                         f"{summary['model']!r}")
    module = AUModule(**hparams)
    try:
        module.load_trained_state(state["state_dict"])
    except KeyError as exc:
        raise InputFileError(checkpoint, str(exc)) from None
    module.eval()
    return TrainedRun(run_dir, module, summary["model"], summary["modality"], int(hparams["clip_length"]),
                      int(hparams["n_coefficients"]), layout["size"], layout["crop"], layout["event_representation"],
                      layout["event_subwindows"], layout["event_channels_per_subwindow"], checkpoint)
