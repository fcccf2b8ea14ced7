"""Build a model by name: the names the CLI, the config's experiments and the tables use."""

from __future__ import annotations

from torch import nn

from .. import MODEL_INPUTS

MODEL_NAMES = tuple(MODEL_INPUTS)
FRAME_MODELS = tuple(name for name, kind in MODEL_INPUTS.items() if kind == "frames")


def build_model(name: str, clip_length: int, n_classes: int = 24, n_coefficients: int = 32,
                resnet_weights=None, i3d_weights=None, backbone_seed: int = 0, i3d_input_size: int = 0,
                i3d_frame_step: int = 1) -> nn.Module:
    """The named model with the paper's sizes; ``clip_length`` matters to I3D's L x K regression head, and
    ``i3d_input_size`` / ``i3d_frame_step`` to what I3D's trunk sees (:class:`~.i3d.I3DClassifier`)."""
    from .coefficients import CoefficientLSTM, CoefficientTransformer
    from .i3d import I3DClassifier
    from .sequence import ResNet18LSTM, ResNet18Transformer

    if name == "resnet18_lstm":
        return ResNet18LSTM(n_classes, n_coefficients, weights_path=resnet_weights, backbone_seed=backbone_seed)
    if name == "resnet18_transformer":
        return ResNet18Transformer(n_classes, n_coefficients, weights_path=resnet_weights,
                                   backbone_seed=backbone_seed)
    if name == "i3d":
        return I3DClassifier(clip_length, n_classes, n_coefficients, weights_path=i3d_weights,
                             input_size=i3d_input_size, frame_step=i3d_frame_step)
    if name == "coeff_transformer":
        return CoefficientTransformer(n_coefficients, n_classes)
    if name == "coeff_lstm":
        return CoefficientLSTM(n_coefficients, n_classes)
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
