"""The figures of the Snakemake report: per-AU top-1 beside the paper, training curves, per-user sanity panels.

Each figure states its caveats in its title, so a PNG copied out of the report still says what it shows:
the data source (``synthetic`` data measure the pipeline, not the method) and a randomly initialised
backbone trunk (``backbone_weights`` of the form ``random-init:...`` in ``run.json`` or the tables, where
the paper used pretrained weights).

* :func:`save_per_au_figure` reads ``table4_per_au.csv`` (:mod:`facemorphic.evaluation.tables`): per
  experiment, our top-1 per AU (seed mean, with the 95 % bootstrap interval over test recordings) beside
  the paper's Table 4 value, and the chance level.
* :func:`save_training_curves` reads the runs' ``metrics.csv`` (one row per epoch and stage, the
  Lightning CSVLogger's layout written by :mod:`facemorphic.training.module`): loss and top-1 per epoch,
  train and validation, one line per seed, the epoch whose checkpoint was kept marked.
* :func:`save_sanity_panel` shows one instant of one recording through three stages: the RGB frame with
  its 68 landmarks, the event frame of the same index (the models' three-channel view), and the fitted
  3DMM mesh of that frame's coefficients projected with that frame's fitted camera over the dimmed RGB
  frame, so a misaligned fit, a landmark track on the wrong face or an event stream out of step is
  visible at a glance.

Matplotlib (Agg) draws everything; the mesh is drawn as shaded polygons, back faces culled and the rest
painted far to near (a z-buffer is not needed for a face seen from the front, and this keeps the figure
job free of the renderer's JIT compilation).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import ACTION_UNITS
from ..errors import FacemorphicError, InputFileError
from ..training.runfolder import read_run_json
from ..evaluation.tables import PAPER_TABLE4_TOP1
from ..fileio import atomic_path

log = logging.getLogger(__name__)

#: dots per inch of every report figure (small files, labels still legible)
DPI = 100


def caveats(data_source: str, backbone_weights: str | None = None) -> str:
    """The caveats a figure's title carries: synthetic data, a randomly initialised trunk."""
    notes = []
    if data_source == "synthetic":
        notes.append("SYNTHETIC data (tests the pipeline, not the method)")
    elif data_source in ("", "unstated"):
        notes.append("data source unstated")
    if backbone_weights and any(part.startswith("random-init") for part in str(backbone_weights).split(";")):
        notes.append("random trunk weights (the paper used pretrained ones)")
    return "; ".join(notes)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: str | Path) -> None:
    plt = _pyplot()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=DPI, format="png")
    plt.close(figure)


# ---------------------------------------------------------------------------------------------------------
# Per-AU top-1 beside the paper's Table 4
PER_AU_COLUMNS = ("experiment", "model", "au", "data_source", "backbone_weights", "n_test_recordings",
                  "top1_pct_mean", "top1_pct_ci95_low", "top1_pct_ci95_high", "paper_top1_pct", "chance_top1_pct")


def read_per_au_table(path: str | Path) -> pd.DataFrame:
    """``table4_per_au.csv`` with the columns the figure needs (``au`` as text: ``all`` or an AU number)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "per-AU table not found")
    try:
        table = pd.read_csv(path, dtype={"au": str, "experiment": str, "backbone_weights": str,
                                         "data_source": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputFileError(path, f"not a readable CSV table: {exc}") from None
    missing = [column for column in PER_AU_COLUMNS if column not in table.columns]
    if missing:
        raise InputFileError(path, f"missing columns {missing} (not written by `facemorphic evaluate`)")
    return table


def save_per_au_figure(table: pd.DataFrame, path: str | Path) -> None:
    """Write :func:`per_au_figure` of ``table`` as a PNG."""
    _save(per_au_figure(table), path)


def per_au_figure(table: pd.DataFrame):
    """One panel per experiment: our top-1 per AU (bars with the bootstrap interval) beside the paper's.

    AUs that have no test recording in our data get no bar of ours and an ``n=0`` tick label; the paper's
    bar is drawn for every AU its model has. An empty table (no frame model on events trained with L_alpha)
    gives a figure that says so, so the report still has the item.
    """
    plt = _pyplot()
    per_au = table[table["au"] != "all"]
    experiments = sorted(per_au["experiment"].unique())
    if not experiments:
        figure, axes = plt.subplots(figsize=(8, 2))
        axes.axis("off")
        axes.text(0.5, 0.5, "No per-AU results: no frame model on events was trained with L_alpha",
                  ha="center", va="center")
        return figure
    figure, axes_list = plt.subplots(len(experiments), 1, figsize=(11, 3.4 * len(experiments)), squeeze=False)
    positions = np.arange(len(ACTION_UNITS))
    width = 0.4
    for axes, experiment in zip(axes_list[:, 0], experiments):
        rows = per_au[per_au["experiment"] == experiment].copy()
        rows["au_index"] = [ACTION_UNITS.index(int(au)) for au in rows["au"]]
        ours = np.full(len(ACTION_UNITS), np.nan)
        low, high = ours.copy(), ours.copy()
        counts = np.zeros(len(ACTION_UNITS), dtype=int)
        paper = ours.copy()
        for row in rows.itertuples():
            ours[row.au_index], low[row.au_index], high[row.au_index] = (
                row.top1_pct_mean, row.top1_pct_ci95_low, row.top1_pct_ci95_high)
            counts[row.au_index] = row.n_test_recordings
        model = rows["model"].iloc[0]
        paper_values = PAPER_TABLE4_TOP1.get(model)
        if paper_values is not None:
            paper[:] = paper_values
        present = ~np.isnan(ours)
        errors = np.vstack([ours - low, high - ours])[:, present]
        axes.bar(positions[present] - width / 2, ours[present], width, yerr=np.clip(errors, 0, None),
                 capsize=2, color="tab:blue", label="ours (seed mean, 95% CI over test recordings)")
        for position, value in zip(positions[present], ours[present]):  # a bar at 0 % is invisible otherwise
            axes.annotate(f"{value:.0f}", (position - width / 2, value), xytext=(0, 2), textcoords="offset points",
                          ha="center", va="bottom", fontsize=6, color="tab:blue")
        axes.bar(positions + width / 2, paper, width, color="tab:gray", alpha=0.7, label=f"paper, {model}")
        chance = rows["chance_top1_pct"].iloc[0]
        axes.axhline(chance, color="tab:red", linestyle=":", linewidth=1, label=f"chance ({chance:.0f}%)")
        axes.set_xticks(positions, [f"AU{au}\nn={n}" for au, n in zip(ACTION_UNITS, counts)], fontsize=7)
        axes.set_xlim(-0.6, len(ACTION_UNITS) - 0.4)
        axes.set_ylim(0, 105)
        axes.set_ylabel("top-1 accuracy (%)")
        note = caveats(str(rows["data_source"].iloc[0]), str(rows["backbone_weights"].iloc[0]))
        axes.set_title(f"{experiment} ({model}, events, with L_alpha): top-1 per AU"
                       + (f"\n{note}" if note else ""), fontsize=9)
        axes.legend(fontsize=7, loc="upper left", ncol=3)
    figure.tight_layout()
    return figure


# ---------------------------------------------------------------------------------------------------------
# Training curves
CURVE_METRICS = ("train_loss", "val_loss", "train_top1", "val_top1")


def read_epoch_metrics(path: str | Path) -> pd.DataFrame:
    """One row per epoch (index ``epoch``) of a run's ``metrics.csv``: ``train_loss``, ``val_loss``,
    ``train_top1``, ``val_top1`` (top-1 as a fraction; NaN where a stage was not run, e.g. no validation).

    The logger writes the train and the validation values of an epoch on separate rows; the last value
    logged for each metric in an epoch is the epoch's.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "metrics.csv not found in the run folder")
    try:
        metrics = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputFileError(path, f"not a readable CSV table: {exc}") from None
    if "epoch" not in metrics.columns or "train_loss" not in metrics.columns:
        raise InputFileError(path, "no epoch or train_loss column (not a training run's metrics.csv)")
    for column in CURVE_METRICS:
        if column not in metrics.columns:
            metrics[column] = np.nan
    return metrics.groupby("epoch")[list(CURVE_METRICS)].last().sort_index()


@dataclass
class RunCurves:
    """One run's epoch metrics and what ``run.json`` says about it."""

    seed: int
    epochs: pd.DataFrame
    info: dict


def read_run_curves(run_dir: str | Path) -> RunCurves:
    run_dir = Path(run_dir)
    info = read_run_json(run_dir)
    return RunCurves(int(info.get("seed", 0)), read_epoch_metrics(run_dir / "metrics.csv"), info)


def save_training_curves(run_dirs, experiment: str, data_source: str, path: str | Path) -> None:
    """Write :func:`training_curves_figure` of the runs as a PNG."""
    runs = [read_run_curves(run_dir) for run_dir in run_dirs]
    _save(training_curves_figure(runs, experiment, data_source), path)


def training_curves_figure(runs: list[RunCurves], experiment: str, data_source: str):
    """Loss and top-1 (%) per epoch, train (solid) and validation (dashed), one colour per seed; a star on
    the epoch whose checkpoint predicted the test set (best validation top-1; the last epoch without a
    validation split), as :mod:`facemorphic.training.run` chooses it."""
    runs = sorted(runs, key=lambda run: run.seed)
    if not runs:
        raise FacemorphicError(f"experiment {experiment}: no run folders given for its training curves")
    plt = _pyplot()
    figure, (loss_axes, top1_axes) = plt.subplots(1, 2, figsize=(10, 3.8))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, run in enumerate(runs):
        colour, epochs = colours[i % len(colours)], run.epochs
        for stage, style, marker in (("train", "-", "o"), ("val", "--", "s")):
            loss, top1 = epochs[f"{stage}_loss"], 100.0 * epochs[f"{stage}_top1"]
            for axes, values in ((loss_axes, loss), (top1_axes, top1)):
                if values.notna().any():
                    axes.plot(epochs.index, values, style, marker=marker, markersize=4, color=colour,
                              markerfacecolor=colour if stage == "train" else "none", label=f"seed {run.seed} {stage}")
        kept = kept_epoch(epochs)
        if kept is not None:
            top1_axes.plot([kept], [100.0 * _kept_top1(epochs, kept)], marker="*", markersize=12, color=colour,
                           linestyle="none")
    loss_axes.set_ylabel("loss (L_AU + lambda L_alpha)")
    top1_axes.set_ylabel("top-1 accuracy (%)")
    top1_axes.set_ylim(-2, 102)
    last_epoch = max((int(run.epochs.index.max()) for run in runs if not run.epochs.empty), default=0)
    for axes in (loss_axes, top1_axes):
        axes.set_xlabel("epoch")
        axes.set_xlim(-0.5, last_epoch + 0.5)
        axes.set_xticks(range(0, last_epoch + 1, max(1, -(-(last_epoch + 1) // 10))))  # whole epochs, <= 10 ticks
        axes.grid(alpha=0.3)
    if loss_axes.get_legend_handles_labels()[0]:
        loss_axes.legend(fontsize=7)
    info = runs[0].info
    lambdas = sorted({float(run.info.get("lambda_alpha", 0.0)) for run in runs})
    weights = ";".join(sorted({str(run.info.get("backbone_weights", "")) for run in runs}))
    note = caveats(data_source, weights)
    figure.suptitle(f"{experiment}: {info.get('model')} on {info.get('modality')}, lambda_alpha "
                    f"{', '.join(f'{v:g}' for v in lambdas)}, {len(runs)} seed(s); star = epoch kept"
                    + (f"\n{note}" if note else ""), fontsize=9)
    figure.tight_layout()
    return figure


def kept_epoch(epochs: pd.DataFrame):
    """The epoch whose weights predicted the test set: the first with the best validation top-1, or the
    last epoch when the run had no validation split; None for a run with no epoch logged."""
    if epochs.empty:
        return None
    val = epochs["val_top1"].dropna()
    return val.idxmax() if len(val) else epochs.index[-1]


def _kept_top1(epochs: pd.DataFrame, epoch) -> float:
    value = epochs.loc[epoch, "val_top1"]
    return float(value if np.isfinite(value) else epochs.loc[epoch, "train_top1"])


# ---------------------------------------------------------------------------------------------------------
# Per-user sanity panel
@dataclass
class SanityFrame:
    """One instant of one recording as three stages saw it."""

    recording_id: str
    frame: int
    n_frames: int
    rgb: np.ndarray  # uint8 [H, W, 3]
    landmarks: np.ndarray  # [68, 2] pixels (NaN where the track has none)
    landmarks_valid: bool
    landmarks_interpolated: bool
    landmark_backend: str
    event_image: np.ndarray  # uint8 [h, w, 3]: the models' three-channel view
    representation: str
    mesh_pixels: np.ndarray | None  # [N, 2]: fitted mesh projected with the frame's camera; None without a fit
    mesh_depth: np.ndarray | None  # [N]: distance along the viewing direction (larger is farther)
    face_shade: np.ndarray | None  # [F]: |cos| of the angle between each face's normal and the viewing direction
    faces: np.ndarray  # [F, 3]
    model_landmarks: np.ndarray | None  # [68, 2]: the model's landmarks, projected
    residual_px: float


def first_au_recording(manifest: pd.DataFrame, available: set[str]) -> str:
    """The user's first AU recording (lowest AU, then repetition) that every stage wrote a group for."""
    rows = manifest[manifest["task"] == "au"].sort_values(["au", "repetition", "recording_id"])
    for recording_id in rows["recording_id"]:
        if recording_id in available:
            return recording_id
        log.warning("%s lacks a landmarks, events or coefficients group; trying the next AU recording",
                    recording_id)
    raise FacemorphicError(f"no AU recording of the {len(rows)} in the manifest has landmarks, events and "
                           "coefficients")


def decode_rgb_frame(path: str | Path, index: int) -> np.ndarray:
    """RGB frame ``index`` of a video or JPEG folder, through the reader every stage shares (so frame k is
    the landmarks' and the coefficients' frame k)."""
    from ..video.reader import open_rgb

    for batch in open_rgb(path).batches(32):
        hit = np.flatnonzero(batch.indices == index)
        if len(hit):
            return batch.images[hit[0]]
        if batch.indices[-1] > index:
            break
    raise InputFileError(path, f"frame {index} could not be decoded")


def load_sanity_frame(manifest_path, landmarks_path, events_path, coefficients_path, model_path) -> SanityFrame:
    """The middle frame of the user's first AU recording, read through each stage's own reader."""
    import h5py

    from ..dataset.manifest import read_manifest
    from ..events.io import open_events_file, read_event_frames
    from ..fitting.io import open_coefficients_file, read_recording_fit
    from ..landmarks.io import read_landmark_track
    from ..morphable.model import load_model
    from ..shards.frames import events_to_three_channels

    manifest = read_manifest(manifest_path, required=("recording_id", "task", "au", "repetition", "rgb_path"))
    with h5py.File(landmarks_path, "r") as handle:
        with_landmarks = set(handle)
    with open_events_file(events_path) as events_h5, open_coefficients_file(coefficients_path) as fit_h5:
        recording_id = first_au_recording(manifest, with_landmarks & set(events_h5) & set(fit_h5))
        record = read_event_frames(events_h5, recording_id)
        fit = read_recording_fit(fit_h5, recording_id)
        track = read_landmark_track(landmarks_path, recording_id)
        n_frames = len(track.landmarks)
        frame = n_frames // 2
        if record.n_frames != n_frames or len(fit.valid) != n_frames:
            raise FacemorphicError(f"{recording_id}: {n_frames} landmark frames, {record.n_frames} event frames, "
                                   f"{len(fit.valid)} fitted frames (the stages disagree on the RGB frames)")
        event = events_to_three_channels(np.asarray(record.frames[frame:frame + 1]), record.subwindows,
                                          record.channels_per_subwindow)[0]
    rgb_path = manifest.loc[manifest["recording_id"] == recording_id, "rgb_path"].iloc[0]
    model = load_model(model_path)
    mesh_pixels = mesh_depth = face_shade = model_landmarks = None
    if fit.valid[frame]:
        vertices = model.shape(fit.alpha_id.astype(np.float64), fit.alpha_au[frame].astype(np.float64))
        camera = fit.camera[frame].astype(np.float64)
        mesh_pixels = vertices @ camera[:, :3].T + camera[:, 3]
        # image x and y-down span the rows of the camera; their cross product points away from the viewer
        viewing = np.cross(camera[0, :3], camera[1, :3])
        viewing /= np.linalg.norm(viewing)
        mesh_depth = vertices @ viewing
        corners = vertices[model.faces]
        normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        lengths = np.linalg.norm(normals, axis=1)
        face_shade = np.abs(normals @ viewing) / np.where(lengths > 0, lengths, 1.0)
        model_landmarks = model.landmark_points(vertices) @ camera[:, :3].T + camera[:, 3]
    return SanityFrame(
        recording_id=recording_id, frame=frame, n_frames=n_frames, rgb=decode_rgb_frame(rgb_path, frame),
        landmarks=track.landmarks[frame, :, :2], landmarks_valid=bool(track.valid[frame]),
        landmarks_interpolated=bool(track.interpolated[frame]),
        landmark_backend=str(_group_attr(landmarks_path, recording_id, "backend")),
        event_image=np.ascontiguousarray(event.transpose(1, 2, 0)), representation=record.representation,
        mesh_pixels=mesh_pixels, mesh_depth=mesh_depth, face_shade=face_shade, faces=model.faces,
        model_landmarks=model_landmarks,
        residual_px=float(fit.residual_px[frame]))


def _group_attr(path, group: str, name: str, default: str = "unrecorded"):
    import h5py

    with h5py.File(path, "r") as handle:
        return handle[group].attrs.get(name, default)


def visible_faces_far_to_near(pixels: np.ndarray, depth: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Indices of the faces turned towards the camera, farthest first (the painter's order).

    Front faces are those whose projected winding is the one most faces have (a face mesh seen from the
    front shows most of its triangles), so the test holds whichever winding the model uses."""
    a, b, c = pixels[faces[:, 0]], pixels[faces[:, 1]], pixels[faces[:, 2]]
    signed = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    front = np.flatnonzero(np.sign(signed) == (1 if np.sum(signed > 0) >= np.sum(signed < 0) else -1))
    return front[np.argsort(-depth[faces[front]].mean(axis=1), kind="stable")]


def save_sanity_panel(sample: SanityFrame, user: str, data_source: str, path: str | Path) -> None:
    """Write :func:`sanity_figure` of ``sample`` as a PNG."""
    _save(sanity_figure(sample, user, data_source), path)


def sanity_figure(sample: SanityFrame, user: str, data_source: str):
    """RGB frame with landmarks | event frame | fitted mesh over the dimmed RGB frame, one row."""
    from matplotlib.collections import PolyCollection

    plt = _pyplot()
    height, width = sample.rgb.shape[:2]
    figure, (rgb_axes, event_axes, mesh_axes) = plt.subplots(1, 3, figsize=(12, 4.2))
    rgb_axes.imshow(sample.rgb)
    state = "valid" if sample.landmarks_valid else "NOT valid"
    state += ", interpolated" if sample.landmarks_interpolated else ""
    if np.isfinite(sample.landmarks).any():
        rgb_axes.scatter(sample.landmarks[:, 0], sample.landmarks[:, 1], s=6, c="lime", edgecolors="black",
                         linewidths=0.3)
    rgb_axes.set_title(f"RGB frame {sample.frame}/{sample.n_frames}\n68 landmarks ({sample.landmark_backend}, "
                       f"{state})", fontsize=8)
    event_axes.imshow(sample.event_image)
    event_axes.set_title(f"event frame {sample.frame} ({sample.representation})\n"
                         f"{sample.event_image.shape[1]}x{sample.event_image.shape[0]}, as the models see it",
                         fontsize=8)
    mesh_axes.imshow((0.35 * sample.rgb.mean(axis=2)).astype(np.uint8), cmap="gray", vmin=0, vmax=255)
    if sample.mesh_pixels is not None:
        order = visible_faces_far_to_near(sample.mesh_pixels, sample.mesh_depth, sample.faces)
        triangles = sample.mesh_pixels[sample.faces[order]]
        colours = plt.get_cmap("bone")(0.25 + 0.7 * sample.face_shade[order])
        colours[:, 3] = 0.85
        mesh_axes.add_collection(PolyCollection(triangles, facecolors=colours, edgecolors="none", antialiased=False))
        if np.isfinite(sample.landmarks).any():
            mesh_axes.scatter(sample.landmarks[:, 0], sample.landmarks[:, 1], s=4, c="lime", label="detected")
        mesh_axes.scatter(sample.model_landmarks[:, 0], sample.model_landmarks[:, 1], s=14, c="red", marker="x",
                          linewidths=0.8, label="model landmarks (fit)")
        mesh_axes.legend(fontsize=6, loc="lower right")
        mesh_axes.set_title(f"fitted 3DMM, frame {sample.frame}'s coefficients and camera\n"
                            f"RMS residual {sample.residual_px:.2f} px", fontsize=8)
    else:
        mesh_axes.text(width / 2, height / 2, "no fit at this frame\n(no valid face)", color="white",
                       ha="center", va="center")
        mesh_axes.set_title(f"fitted 3DMM, frame {sample.frame}", fontsize=8)
    for axes in (rgb_axes, mesh_axes):
        axes.set_xlim(0, width)
        axes.set_ylim(height, 0)
    for axes in (rgb_axes, event_axes, mesh_axes):
        axes.set_xticks([])
        axes.set_yticks([])
    note = caveats(data_source)
    figure.suptitle(f"{user}: {sample.recording_id}, middle frame of the first AU recording"
                    + (f"\n{note}" if note else ""), fontsize=9)
    figure.tight_layout()
    return figure
