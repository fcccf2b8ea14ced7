"""The LightningModule: the paper's loss, optimiser and top-k metrics around any of the models.

Loss L = L_AU + lambda * L_alpha: cross-entropy over the 24 AU classes, plus the paper's per-frame squared
L2 error of the 3DMM AU coefficients, **summed over the K components and averaged over the valid frames**
(frames without a face fit, or padded past a short recording's end, carry no target). The targets are
*standardised* per component with the training split's statistics (:class:`facemorphic.shards.io.AlphaStats`)
and the regression head predicts standardised values: raw coefficients of unit-norm atoms are ~0.01-0.3,
so without it L_alpha is ~1e-4 beside a cross-entropy near 3 and no lambda of order 1 lets it act.
:meth:`AUModule.alpha_in_original_units` undoes the scaling. Adam with learning rate 1e-3, as in the paper.

Checkpoints leave out a frozen ResNet-18 trunk (44 MB per file, rewritten every epoch otherwise): it is
rebuilt exactly from the weight file or init seed recorded in the hyperparameters.

Metrics are gathered over the epoch and logged once at its end (losses weighted by batch size, top-k by
:func:`facemorphic.metrics.topk_hits` over all of the epoch's logits): a ``self.log`` per step and metric
cost more than the arithmetic of the small models. Each epoch ends with one plain log line.

Under DDP each process trains on its share of the epoch's clips, so the training metrics are summed over the
processes (one ``all_reduce`` of the epoch's totals) and every process logs the whole epoch's values, the
ones one process would log; validation already sees the whole split in every process
(:meth:`facemorphic.training.data.ShardDataModule.training_sampler`).
"""

from __future__ import annotations

import logging
import time

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from ..metrics import TOPK, nonfinite_rows, topk_hits
from ..models.factory import MODEL_INPUTS, build_model

log = logging.getLogger(__name__)


def masked_frame_squared_error(predicted: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean over valid frames of the per-frame squared L2 coefficient error ``sum_k (a_k - t_k)^2`` (0 when
    no frame is valid)."""
    per_frame = (predicted.float() - target.float()).pow(2).sum(dim=-1)
    weights = valid.float()
    return (per_frame * weights).sum() / weights.sum().clamp(min=1.0)


class AUModule(pl.LightningModule):
    """Trains one model on clips; ``batch`` items come from :class:`~facemorphic.training.data.ClipDataset`."""

    def __init__(self, model_name: str, clip_length: int = 75, lambda_alpha: float = 0.0, lr: float = 1e-3,
                 n_classes: int = 24, n_coefficients: int = 32, resnet_weights: str | None = None,
                 i3d_weights: str | None = None, backbone_seed: int = 0, alpha_mean: list[float] | None = None,
                 alpha_std: list[float] | None = None, i3d_input_size: int = 0, i3d_frame_step: int = 1):
        super().__init__()
        self.save_hyperparameters()
        mean = torch.zeros(n_coefficients) if alpha_mean is None else torch.tensor(alpha_mean, dtype=torch.float32)
        std = torch.ones(n_coefficients) if alpha_std is None else torch.tensor(alpha_std, dtype=torch.float32)
        if mean.shape != (n_coefficients,) or std.shape != (n_coefficients,) or not bool((std > 0).all()):
            raise ValueError(f"alpha statistics must be {n_coefficients} means and positive stds, got "
                             f"{tuple(mean.shape)} and {tuple(std.shape)}")
        # the standardisation of the L_alpha targets (identity when no statistics are given)
        self.register_buffer("alpha_mean", mean)
        self.register_buffer("alpha_std", std)
        self.model = build_model(model_name, clip_length, n_classes, n_coefficients, resnet_weights, i3d_weights,
                                 backbone_seed, i3d_input_size, i3d_frame_step)
        self.lambda_alpha, self.lr = lambda_alpha, lr
        if lambda_alpha > 0 and MODEL_INPUTS[model_name] == "coefficients":
            raise ValueError(f"{model_name} has no coefficient regression head; lambda_alpha must be 0")

        self.strict_loading = not getattr(self.model, "frozen_backbone", False)
        self._epoch: dict[str, dict[str, list]] = {}
        self._epoch_started = 0.0

    @property
    def frozen_keys(self) -> list[str]:
        """State-dict keys of the frozen trunk (left out of checkpoints)."""
        if not getattr(self.model, "frozen_backbone", False):
            return []
        return [f"model.encoder.trunk.{k}" for k in self.model.encoder.trunk.state_dict()]

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        for key in self.frozen_keys:
            checkpoint["state_dict"].pop(key, None)

    def load_trained_state(self, state: dict) -> None:
        """Load a checkpoint's state dict; only the frozen trunk may be absent from it."""
        missing, unexpected = self.load_state_dict(state, strict=False)
        bad = sorted(set(missing) - set(self.frozen_keys)) + sorted(unexpected)
        if bad:
            raise KeyError(f"checkpoint does not match the model: {bad[:5]}")

    def forward(self, batch: dict):
        if "features" in batch:
            return self.model.forward_features(batch["features"])
        if "coefficients" in batch:
            # standardised per coefficient with the training set's statistics (a global affine map, so each
            # frame keeps its magnitude): fitted coefficients are a few hundredths, where an LSTM's gates
            # barely move and a run stops before it learns anything; a fit gap is the mean face (0)
            valid = batch["coefficient_valid"].bool()
            coefficients = torch.where(valid.unsqueeze(-1), self.standardised_alpha(batch["coefficients"]), 0.0)
            return self.model(coefficients, valid)
        return self.model(batch["frames"])

    def standardised_alpha(self, alpha: torch.Tensor) -> torch.Tensor:
        """Coefficients in original units -> the standardised units the regression head predicts."""
        return (alpha.float() - self.alpha_mean) / self.alpha_std

    def alpha_in_original_units(self, predicted: torch.Tensor) -> torch.Tensor:
        """The regression head's standardised output -> 3DMM coefficients in original units."""
        return predicted.float() * self.alpha_std + self.alpha_mean

    def losses(self, logits, alpha, batch) -> dict:
        """``ce``, ``alpha_sq`` (L_alpha on standardised targets, see the module docstring) and their sum
        ``loss`` = ce + lambda * alpha_sq."""
        out = {"ce": F.cross_entropy(logits.float(), batch["label"])}
        if alpha is not None:
            out["alpha_sq"] = masked_frame_squared_error(alpha, self.standardised_alpha(batch["alpha"]),
                                                         batch["alpha_valid"])
            out["loss"] = out["ce"] + self.lambda_alpha * out["alpha_sq"] if self.lambda_alpha else out["ce"]
        else:
            out["loss"] = out["ce"]
        return out

    def _step(self, batch, stage: str):
        logits, alpha = self(batch)
        losses = self.losses(logits, alpha, batch)
        record = self._epoch.setdefault(stage, {"sizes": [], "losses": [], "logits": [], "labels": []})
        record["sizes"].append(len(batch["label"]))
        record["losses"].append({name: value.detach() for name, value in losses.items()})
        record["logits"].append(logits.detach())
        record["labels"].append(batch["label"])
        return losses["loss"]

    def _log_epoch(self, stage: str) -> dict[str, float]:
        """Log the epoch's weighted mean losses and top-k of ``stage``; returns them as floats."""
        record = self._epoch.pop(stage, None)
        if not record:
            return {}
        sizes = torch.tensor(record["sizes"], dtype=torch.float64)
        names = list(record["losses"][0])
        logits, labels = torch.cat(record["logits"]), torch.cat(record["labels"])
        # the epoch's totals: clips, size-weighted loss sums, top-k hits, non-finite rows
        totals = torch.tensor([
            float(sizes.sum()),
            *[float((torch.stack([losses[name].double().cpu() for losses in record["losses"]]) * sizes).sum())
              for name in names],
            *[float(topk_hits(logits, labels, k).sum()) for k in TOPK],
            float(nonfinite_rows(logits).sum()),
        ], dtype=torch.float64)
        if stage == "train" and self.trainer.world_size > 1:
            totals = self.trainer.strategy.reduce(totals.to(self.device), reduce_op="sum").cpu()
        clips = float(totals[0])
        values = {f"{stage}_{name}": float(totals[1 + i]) / clips for i, name in enumerate(names)}
        for j, k in enumerate(TOPK):
            values[f"{stage}_top{k}"] = float(totals[1 + len(names) + j]) / clips
        nonfinite = int(totals[-1])
        if nonfinite:
            log.warning("epoch %d: %d of %d %s clips have non-finite logits (scored as misses)",
                        self.current_epoch, nonfinite, int(clips), stage)
        values[f"{stage}_nonfinite"] = float(nonfinite)
        for name, value in values.items():
            # already the whole epoch's values in every process: nothing left to synchronise
            self.log(name, value)
        return values

    def on_train_epoch_start(self) -> None:
        self._epoch_started = time.perf_counter()

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def on_train_epoch_end(self) -> None:
        train = self._log_epoch("train")
        if not self.trainer.is_global_zero or not train:
            return
        val_top1 = self.trainer.callback_metrics.get("val_top1")
        val = f"  val top-1 {float(val_top1):.3f}" if val_top1 is not None else ""
        log.info("epoch %d/%d  train loss %.4f  train top-1 %.3f%s  %.2f s", self.current_epoch + 1,
                 self.trainer.max_epochs, train["train_loss"], train["train_top1"], val,
                 time.perf_counter() - self._epoch_started)

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def configure_optimizers(self):
        # fused: one kernel per step instead of a dozen passes over every tensor; on a CPU it makes an I3D
        # step a third faster (the default run's largest cost), the same update up to rounding
        return torch.optim.Adam([p for p in self.parameters() if p.requires_grad], lr=self.lr, fused=True)
