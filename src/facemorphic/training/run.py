"""One training run: seed, fit, pick the checkpoint, predict the evaluation splits, write the run folder.

Run folder (fixed names, so Snakemake and the tables can find everything)::

    {out_dir}/metrics.csv          per-epoch losses and top-k (Lightning CSVLogger)
    {out_dir}/hparams.yaml         the module's hyperparameters
    {out_dir}/checkpoints/last.ckpt   the weights after the last epoch (written once, after training)
    {out_dir}/checkpoints/best.ckpt   only with a val split: the epoch with the highest val top-1
    {out_dir}/predictions.csv      one row per evaluated recording: split, label, the 24 logits named by AU
                                   (logit_AU1 ... logit_AU56), top-k hits
    {out_dir}/run.json             what ran (experiment, model, modality, lambda, seed, backbone weights, the
                                   alpha statistics, ...) and its scores, with ``{split}_alpha_r2``: the R^2
                                   of the predicted against the RGB-fitted coefficients, in original units

With ``val_fraction`` > 0 the validation split is carved from the training recordings (stratified by AU,
``val_seed``; :func:`facemorphic.training.data.carve_validation`), the model is fitted on the rest, and the
checkpoint is the epoch with the best validation top-1; with ``patience`` > 0 the run also ends once the
validation top-1 has not improved for that many epochs (early stopping, ``epochs`` being the maximum), the
same protocol for every model family.

Predictions are per recording: with sliding evaluation windows, the windows' logits are averaged.
Predictions come from best.ckpt when there is a val split, else from the final weights (last.ckpt: a
second, byte-identical "best" file would only double the grid's checkpoints). Runs are reproducible: the
seed fixes initialisation, shuffling and random windows, and torch's deterministic algorithms are asked
for (with a warning where an operation has none).

With ``strategy: ddp`` and several devices, Lightning starts one process per device and each runs this
function: ``batch_size`` is per process, and the epoch's shuffled clips are shared out so that W processes of
``batch_size`` train like one process of ``W * batch_size`` (``ShardDataModule.training_sampler``). Only the
global rank 0 clears the run folder, writes the logs and checkpoints (Lightning's CSVLogger and
``save_checkpoint`` write on rank 0) and predicts and writes ``predictions.csv`` and ``run.json``; the other
processes return after training.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import ACTION_UNITS
from ..errors import FacemorphicError
from ..fileio import write_csv_atomic, write_text_atomic
from ..metrics import TOPK, nonfinite_rows, topk_hits
from .options import TrainOptions

log = logging.getLogger(__name__)

#: predictions.csv's logit columns, named by the AU they score, in class-index order
LOGIT_COLUMNS = [f"logit_AU{au}" for au in ACTION_UNITS]


@dataclass
class RunConfig(TrainOptions):
    """One run: its options (:class:`~facemorphic.training.options.TrainOptions`, the single source of their
    defaults) plus where it reads and writes; ``experiment`` names it in the tables."""

    shards_dir: str = ""
    out_dir: str = ""
    experiment: str = ""
    seed: int = 0
    features_dir: str | None = None
    predict_splits: list[str] = field(default_factory=lambda: ["val", "test"])


def _devices(value: str):
    return int(value) if str(value).isdigit() else value


def cluster_environments() -> list:
    """Lightning's cluster environment when it must not be the one it detects: inside a SLURM job of one task
    (how the SLURM executor submits a job) Lightning would take SLURM to have started every process, so
    ``devices: 2`` would wait for a second task that never comes; the job's own process starts them instead,
    as outside SLURM. A job of several tasks (``srun`` started one per device) keeps Lightning's detection."""
    from lightning_fabric.plugins.environments import (
        LightningEnvironment,
        SLURMEnvironment,
    )

    if SLURMEnvironment.detect() and int(os.environ.get("SLURM_NTASKS", "1")) == 1:
        return [LightningEnvironment()]
    return []


@dataclass
class AlphaAccumulator:
    """Running sums over valid frames and components for the coefficient regression's R^2 in original units:
    ``1 - SSE / SST``, SST around the per-component mean of the evaluated targets, pooled over components."""

    target_sum: np.ndarray | None = None
    target_squares: np.ndarray | None = None
    errors: np.ndarray | None = None
    frames: int = 0

    def add(self, predicted: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> None:
        mask = valid.reshape(-1).cpu().numpy()
        k = target.shape[-1]
        y = target.reshape(-1, k).double().cpu().numpy()[mask]
        y_hat = predicted.reshape(-1, k).double().cpu().numpy()[mask]
        sums = (y.sum(axis=0), (y ** 2).sum(axis=0), ((y_hat - y) ** 2).sum(axis=0))
        if self.target_sum is None:
            self.target_sum, self.target_squares, self.errors = (np.zeros(k) for _ in range(3))
        self.target_sum += sums[0]
        self.target_squares += sums[1]
        self.errors += sums[2]
        self.frames += len(y)

    def r2(self) -> float:
        """Pooled R^2 (NaN without frames or without target variance)."""
        if not self.frames:
            return float("nan")
        total = float((self.target_squares - self.target_sum ** 2 / self.frames).sum())
        return 1.0 - float(self.errors.sum()) / total if total > 0 else float("nan")


def predict_recordings(module, loader, device, bf16: bool = False) -> tuple[np.ndarray, np.ndarray,
                                                                            AlphaAccumulator]:
    """Per-recording logits (window logits averaged), the recording positions in the dataset, and the
    coefficient regression's error sums over the windows' valid frames (original units; empty for models
    without a regression head)."""
    module.eval().to(device)
    n_samples = len(loader.dataset.samples)
    sums = torch.zeros(n_samples, len(LOGIT_COLUMNS), dtype=torch.float64)
    counts = torch.zeros(n_samples, dtype=torch.long)
    regression = AlphaAccumulator()
    use_bf16 = bf16 and device.type == "cuda"
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            logits, alpha = module(batch)
            samples = batch["sample"].cpu()
            sums.index_add_(0, samples, logits.double().cpu())
            counts.index_add_(0, samples, torch.ones_like(samples))
            if alpha is not None:
                regression.add(module.alpha_in_original_units(alpha), batch["alpha"], batch["alpha_valid"])
    order = torch.nonzero(counts).flatten()
    mean = sums[order] / counts[order, None]
    return mean.float().numpy(), order.numpy(), regression


def backbone_weights(config: RunConfig, model) -> str:
    """What the model's backbone started from: ``imagenet:<file>``, ``kinetics:<file>``,
    ``random-init:...`` or ``none`` (coefficient models have no backbone)."""
    if hasattr(model, "backbone_description"):
        return model.backbone_description
    if config.model == "i3d":
        return f"kinetics:{Path(config.i3d_weights).name}" if config.i3d_weights else "random-init:run-seed"
    return "none"


def training_alpha_stats(data, train_dir: Path):
    """The L_alpha target statistics: those stored with the training shards (the shards stage writes them),
    else computed from the fit recordings (the training split less any carved validation recordings) when
    the shards were written without them (e.g. the toy shards)."""
    from ..shards.io import read_alpha_stats, split_alpha_statistics

    stats = read_alpha_stats(train_dir)
    if stats is not None:
        return stats, "shards"
    log.warning("%s carries no alpha statistics; computing them from its samples", train_dir)
    return split_alpha_statistics(data.split_samples("train")), "computed from the fit recordings"


def predictions_frame(samples, logits: np.ndarray, split: str) -> pd.DataFrame:
    """The predictions.csv rows of one split (``samples`` in the order of the ``logits`` rows)."""
    labels = np.array([s.label for s in samples], dtype=int)
    frame = pd.DataFrame({
        "recording_id": [s.recording_id for s in samples],
        "user": [s.user for s in samples],
        "split": split,
        "au": [s.au for s in samples],
        "label": labels,
    })
    if len(samples):
        predicted = logits.argmax(axis=1)
    else:
        predicted = np.zeros(0, int)
    frame["predicted_label"] = predicted
    frame["predicted_au"] = [ACTION_UNITS[i] for i in predicted]
    for k in TOPK:
        frame[f"top{k}"] = topk_hits(logits.reshape(len(labels), -1), labels, k).astype(int)
    for i, column in enumerate(LOGIT_COLUMNS):
        frame[column] = logits[:, i] if len(samples) else []
    return frame


def train_run(config: RunConfig) -> dict:
    """Train and evaluate one run; returns the run summary also written to ``run.json``."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
    from pytorch_lightning.loggers import CSVLogger
    from pytorch_lightning.utilities import rank_zero_only

    from ..models.factory import MODEL_INPUTS
    from ..shards.io import coefficient_count
    from .data import ShardDataModule
    from .features import check_features
    from .module import AUModule

    if (MODEL_INPUTS.get(config.model) == "coefficients") != (config.modality == "coefficients"):
        raise FacemorphicError(f"model {config.model} cannot read modality {config.modality}")
    out_dir = Path(config.out_dir)
    # DDP's other processes rerun this function after rank 0 has started training: only rank 0 clears the folder
    stale_outputs = ("checkpoints", "metrics.csv", "hparams.yaml", "predictions.csv", "run.json")
    for stale in stale_outputs if rank_zero_only.rank == 0 else ():
        target = out_dir / stale
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)

    pl.seed_everything(config.seed, workers=True)
    train_dir = Path(config.shards_dir) / "train"
    data = ShardDataModule(config.shards_dir, config.modality, config.clip_length, config.batch_size,
                           config.num_workers, None, config.eval_windows, config.eval_stride,
                           seed=config.seed, val_fraction=config.val_fraction, val_seed=config.val_seed)
    stats, stats_source = training_alpha_stats(data, train_dir)
    module = AUModule(config.model, config.clip_length, config.lambda_alpha, config.lr,
                      n_coefficients=coefficient_count(train_dir),
                      resnet_weights=config.resnet_weights, i3d_weights=config.i3d_weights,
                      backbone_seed=config.backbone_seed, alpha_mean=stats.mean.tolist(),
                      alpha_std=stats.std.tolist(), i3d_input_size=config.i3d_input_size,
                      i3d_frame_step=config.i3d_frame_step)
    features_dir = config.features_dir if getattr(module.model, "frozen_backbone", False) else None
    if config.features_dir and not features_dir:
        log.warning("%s has no frozen backbone; the feature cache is ignored", config.model)
    data.features_dir = Path(features_dir) if features_dir else None
    if features_dir:
        for split in ["train", *config.predict_splits]:
            if data.split_samples(split):
                check_features(data.features_path(split), module.model.backbone_description, config.modality)
    has_val = bool(data.split_samples("val"))
    callbacks = []
    if has_val:
        callbacks.append(ModelCheckpoint(dirpath=out_dir / "checkpoints", filename="best", monitor="val_top1",
                                         mode="max", save_top_k=1, save_last=False, enable_version_counter=False))
        if config.patience:
            callbacks.append(EarlyStopping(monitor="val_top1", mode="max", patience=config.patience,
                                           check_on_train_epoch_end=False))
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    log.info("%s on %s: %d trainable parameters, %d torch threads, seed %d", config.model, config.modality,
             trainable, torch.get_num_threads(), config.seed)
    trainer = pl.Trainer(
        max_epochs=config.epochs, accelerator=config.accelerator, devices=_devices(config.devices),
        strategy=config.strategy, precision=config.precision, deterministic="warn",
        logger=CSVLogger(save_dir=str(out_dir), name="", version=""), callbacks=callbacks,
        enable_checkpointing=has_val, default_root_dir=str(out_dir), limit_val_batches=1.0 if has_val else 0,
        num_sanity_val_steps=0, enable_progress_bar=sys.stderr.isatty(), enable_model_summary=False,
        log_every_n_steps=1, use_distributed_sampler=False,  # the data module shares the clips out itself
        plugins=cluster_environments(),
    )
    with warnings.catch_warnings():
        # the frozen trunk is in eval mode on purpose (BatchNorm statistics must not move)
        warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
        fit_started = time.perf_counter()
        trainer.fit(module, datamodule=data)
        fit_seconds = time.perf_counter() - fit_started
    last = out_dir / "checkpoints" / "last.ckpt"
    trainer.save_checkpoint(last)
    best = Path(callbacks[0].best_model_path) if has_val and callbacks[0].best_model_path else last
    summary = {"experiment": config.experiment, **asdict(config), "best_checkpoint": str(best),
               "backbone": getattr(module.model, "backbone_description", config.model),
               "backbone_weights": backbone_weights(config, module.model),
               "alpha_stats": {"mean": stats.mean.tolist(), "std": stats.std.tolist(), "frames": stats.n_frames,
                               "source": stats_source},
               "n_fit_recordings": len(data.split_samples("train")),
               "n_val_recordings": len(data.split_samples("val")),
               "feature_cache": bool(features_dir), "epochs_run": trainer.current_epoch,
               "fit_seconds": round(fit_seconds, 3)}
    if not trainer.is_global_zero:
        return summary
    if best != last:
        module.load_trained_state(torch.load(best, map_location="cpu", weights_only=True)["state_dict"])
    device = torch.device("cuda" if config.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()
                          else "cpu")
    frames = []
    for split in config.predict_splits:
        if not data.split_samples(split):
            continue
        loader = data.eval_dataloader(split)
        logits, positions, regression = predict_recordings(module, loader, device, "bf16" in config.precision)
        frames.append(predictions_frame([loader.dataset.samples[i] for i in positions], logits, split))
        if regression.frames:
            summary[f"{split}_alpha_r2"] = regression.r2()
            summary[f"{split}_alpha_frames"] = regression.frames
    if not frames:
        raise FacemorphicError(f"no samples to evaluate in splits {config.predict_splits} of {config.shards_dir}")
    predictions = pd.concat(frames, ignore_index=True)
    write_csv_atomic(predictions, out_dir / "predictions.csv")
    for split, rows in predictions.groupby("split"):
        summary[f"{split}_n"] = len(rows)
        summary[f"{split}_nonfinite"] = int(nonfinite_rows(rows[LOGIT_COLUMNS].to_numpy(float)).sum())
        if summary[f"{split}_nonfinite"]:
            log.warning("%d of %d %s recordings have non-finite logits (scored as misses)",
                        summary[f"{split}_nonfinite"], len(rows), split)
        for k in TOPK:
            summary[f"{split}_top{k}"] = float(rows[f"top{k}"].mean())
    write_text_atomic(out_dir / "run.json", json.dumps(summary, indent=2, default=str) + "\n")
    log.info("run %s: %s", out_dir, {k: v for k, v in summary.items() if k.startswith("test_")})
    return summary
