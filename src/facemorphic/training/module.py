"""The LightningModule: the paper's loss, optimiser and top-k metrics around any of the models.

Loss L = L_AU + lambda * L_alpha: cross-entropy over the 24 AU classes, plus the mean squared error of the
per-frame 3DMM AU coefficients averaged over the *valid* frames only (frames without a face fit, or padded
past a short recording's end, carry no target). Adam with learning rate 1e-3, as in the paper.

Checkpoints leave out a frozen ResNet-18 trunk (44 MB per file, rewritten every epoch otherwise): it is
rebuilt exactly from the weight file or init seed recorded in the hyperparameters.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from ..models.factory import MODEL_INPUTS, build_model


def masked_frame_mse(predicted: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean over valid frames of the per-frame mean squared coefficient error (0 when none is valid)."""
    per_frame = (predicted.float() - target.float()).pow(2).mean(dim=-1)
    weights = valid.float()
    return (per_frame * weights).sum() / weights.sum().clamp(min=1.0)


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """Per sample: is the true class among the k highest logits (ties broken against the true class)."""
    true_logit = logits.gather(1, labels[:, None])
    rank = (logits > true_logit).sum(dim=1)
    return rank < k


class AUModule(pl.LightningModule):
    """Trains one model on clips; ``batch`` items come from :class:`~facemorphic.training.data.ClipDataset`."""

    def __init__(self, model_name: str, clip_length: int = 75, lambda_alpha: float = 0.0, lr: float = 1e-3,
                 n_classes: int = 24, n_coefficients: int = 32, resnet_weights: str | None = None,
                 i3d_weights: str | None = None, backbone_seed: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.model = build_model(model_name, clip_length, n_classes, n_coefficients, resnet_weights, i3d_weights,
                                 backbone_seed)
        self.lambda_alpha, self.lr = lambda_alpha, lr
        if lambda_alpha > 0 and MODEL_INPUTS[model_name] == "coefficients":
            raise ValueError(f"{model_name} has no coefficient regression head; lambda_alpha must be 0")

        self.strict_loading = not getattr(self.model, "frozen_backbone", False)

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
            return self.model(batch["coefficients"], batch["coefficient_valid"])
        return self.model(batch["frames"])

    def losses(self, logits, alpha, batch) -> dict:
        out = {"ce": F.cross_entropy(logits.float(), batch["label"])}
        if alpha is not None:
            out["mse"] = masked_frame_mse(alpha, batch["alpha"], batch["alpha_valid"])
            out["loss"] = out["ce"] + self.lambda_alpha * out["mse"] if self.lambda_alpha else out["ce"]
        else:
            out["loss"] = out["ce"]
        return out

    def _step(self, batch, stage: str):
        logits, alpha = self(batch)
        losses = self.losses(logits, alpha, batch)
        batch_size = len(batch["label"])
        for name, value in losses.items():
            self.log(f"{stage}_{name}", value, batch_size=batch_size, on_epoch=True, on_step=False,
                     prog_bar=name == "loss", sync_dist=stage != "train")
        for k in (1, 3, 5):
            self.log(f"{stage}_top{k}", topk_correct(logits, batch["label"], k).float().mean(),
                     batch_size=batch_size, on_epoch=True, on_step=False, prog_bar=k == 1, sync_dist=stage != "train")
        return losses["loss"]

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def configure_optimizers(self):
        return torch.optim.Adam([p for p in self.parameters() if p.requires_grad], lr=self.lr)
