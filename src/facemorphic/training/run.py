"""One training run: seed, fit, pick the checkpoint, predict the evaluation splits, write the run folder.

Run folder (fixed names, so Snakemake and the tables can find everything)::

    {out_dir}/metrics.csv          per-epoch losses and top-k (Lightning CSVLogger)
    {out_dir}/hparams.yaml         the module's hyperparameters
    {out_dir}/checkpoints/best.ckpt, last.ckpt
    {out_dir}/predictions.csv      one row per evaluated recording: split, label, 24 logits, top-k hits
    {out_dir}/run.json             what ran (experiment, model, modality, lambda, seed, ...) and its scores

Predictions are per recording: with sliding evaluation windows, the windows' logits are averaged.
The best checkpoint is the one with the highest validation top-1 (the last one when there is no val split).
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import ACTION_UNITS
from ..errors import FacemorphicError
from ..fileio import write_csv_atomic, write_text_atomic

log = logging.getLogger(__name__)

LOGIT_COLUMNS = [f"logit_{i:02d}" for i in range(len(ACTION_UNITS))]


@dataclass
class RunConfig:
    """Everything one run needs; ``experiment`` names it in the tables."""

    shards_dir: str
    out_dir: str
    model: str
    modality: str
    experiment: str = ""
    lambda_alpha: float = 0.0
    seed: int = 0
    epochs: int = 30
    batch_size: int = 8
    lr: float = 1e-3
    clip_length: int = 75
    eval_windows: str = "center"
    eval_stride: int | None = None
    features_dir: str | None = None
    num_workers: int = 2
    accelerator: str = "auto"
    devices: str = "auto"
    precision: str = "32-true"
    strategy: str = "auto"
    resnet_weights: str | None = None
    i3d_weights: str | None = None
    backbone_seed: int = 0
    predict_splits: list[str] = field(default_factory=lambda: ["val", "test"])


def _devices(value: str):
    return int(value) if str(value).isdigit() else value


def predict_recordings(module, loader, device, bf16: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per-recording logits (window logits averaged) and the recording positions in the dataset."""
    module.eval().to(device)
    sums: dict[int, torch.Tensor] = {}
    counts: dict[int, int] = {}
    use_bf16 = bf16 and device.type == "cuda"
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = module(batch)[0].float().cpu()
            for sample, row in zip(batch["sample"].tolist(), logits):
                sums[sample] = sums.get(sample, 0) + row
                counts[sample] = counts.get(sample, 0) + 1
    order = sorted(sums)
    if not order:
        return np.zeros((0, len(LOGIT_COLUMNS)), np.float32), np.zeros(0, int)
    return torch.stack([sums[i] / counts[i] for i in order]).numpy(), np.array(order)


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
        true_logit = logits[np.arange(len(labels)), labels]
        rank = (logits > true_logit[:, None]).sum(axis=1)
        predicted = logits.argmax(axis=1)
    else:
        rank = predicted = np.zeros(0, int)
    frame["predicted_label"] = predicted
    frame["predicted_au"] = [ACTION_UNITS[i] for i in predicted]
    for k in (1, 3, 5):
        frame[f"top{k}"] = (rank < k).astype(int)
    for i, column in enumerate(LOGIT_COLUMNS):
        frame[column] = logits[:, i] if len(samples) else []
    return frame


def train_run(config: RunConfig) -> dict:
    """Train and evaluate one run; returns the run summary also written to ``run.json``."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint
    from pytorch_lightning.loggers import CSVLogger

    from ..models.factory import MODEL_INPUTS
    from .data import ShardDataModule
    from .features import check_features
    from ..shards.io import coefficient_count
    from .module import AUModule

    if (MODEL_INPUTS.get(config.model) == "coefficients") != (config.modality == "coefficients"):
        raise FacemorphicError(f"model {config.model} cannot read modality {config.modality}")
    out_dir = Path(config.out_dir)
    for stale in ("checkpoints", "metrics.csv", "hparams.yaml", "predictions.csv", "run.json"):
        target = out_dir / stale
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)

    pl.seed_everything(config.seed, workers=True)
    module = AUModule(config.model, config.clip_length, config.lambda_alpha, config.lr,
                      n_coefficients=coefficient_count(Path(config.shards_dir) / "train"),
                      resnet_weights=config.resnet_weights, i3d_weights=config.i3d_weights,
                      backbone_seed=config.backbone_seed)
    features_dir = config.features_dir if getattr(module.model, "frozen_backbone", False) else None
    if config.features_dir and not features_dir:
        log.warning("%s has no frozen backbone; the feature cache is ignored", config.model)
    data = ShardDataModule(config.shards_dir, config.modality, config.clip_length, config.batch_size,
                           config.num_workers, features_dir, config.eval_windows, config.eval_stride,
                           seed=config.seed)
    if features_dir:
        for split in ["train", *config.predict_splits]:
            if data.split_samples(split):
                check_features(data.features_path(split), module.model.backbone_description, config.modality)
    has_val = bool(data.split_samples("val"))
    checkpoint = ModelCheckpoint(dirpath=out_dir / "checkpoints", filename="best", save_last=True,
                                 monitor="val_top1" if has_val else None, mode="max", save_top_k=1,
                                 enable_version_counter=False)
    trainer = pl.Trainer(
        max_epochs=config.epochs, accelerator=config.accelerator, devices=_devices(config.devices),
        strategy=config.strategy, precision=config.precision, deterministic="warn",
        logger=CSVLogger(save_dir=str(out_dir), name="", version=""), callbacks=[checkpoint],
        default_root_dir=str(out_dir), limit_val_batches=1.0 if has_val else 0, num_sanity_val_steps=0,
        enable_progress_bar=False, log_every_n_steps=1,
    )
    with warnings.catch_warnings():
        # the frozen trunk is in eval mode on purpose (BatchNorm statistics must not move)
        warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
        trainer.fit(module, datamodule=data)
    best = checkpoint.best_model_path or checkpoint.last_model_path
    summary = {"experiment": config.experiment, **asdict(config), "best_checkpoint": str(best),
               "backbone": getattr(module.model, "backbone_description", config.model),
               "feature_cache": bool(features_dir), "epochs_run": trainer.current_epoch}
    if not trainer.is_global_zero:
        return summary
    state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
    module.load_trained_state(state)
    device = torch.device("cuda" if config.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()
                          else "cpu")
    frames = []
    for split in config.predict_splits:
        if not data.split_samples(split):
            continue
        loader = data.eval_dataloader(split)
        logits, positions = predict_recordings(module, loader, device, "bf16" in config.precision)
        frames.append(predictions_frame([loader.dataset.samples[i] for i in positions], logits, split))
    if not frames:
        raise FacemorphicError(f"no samples to evaluate in splits {config.predict_splits} of {config.shards_dir}")
    predictions = pd.concat(frames, ignore_index=True)
    write_csv_atomic(predictions, out_dir / "predictions.csv")
    for split, rows in predictions.groupby("split"):
        summary[f"{split}_n"] = len(rows)
        for k in (1, 3, 5):
            summary[f"{split}_top{k}"] = float(rows[f"top{k}"].mean())
    write_text_atomic(out_dir / "run.json", json.dumps(summary, indent=2, default=str) + "\n")
    log.info("run %s: %s", out_dir, {k: v for k, v in summary.items() if k.startswith("test_")})
    return summary
