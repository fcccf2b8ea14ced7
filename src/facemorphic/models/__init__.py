"""The paper's models: frame-sequence networks over event or RGB frames, and coefficient-only classifiers.

Every model maps a clip to ``(logits [B, 24], alpha [B, L, K] or None)``: AU class scores for the clip
and, for the frame models, the per-frame 3DMM AU coefficients that the cross-modal loss supervises.
Frames go in as uint8 ``[B, L, 3, H, W]``; each model converts and normalises them itself, so the data
loader moves compact uint8 tensors and a cached-feature path sees exactly what the full model sees.
"""

from .backbones import RESNET18_WEIGHTS_FILE, build_resnet18_trunk, find_resnet18_weights
from .coefficients import CoefficientLSTM, CoefficientTransformer
from .factory import FRAME_MODELS, MODEL_INPUTS, MODEL_NAMES, build_model
from .i3d import InceptionI3d, I3DClassifier
from .sequence import ResNet18LSTM, ResNet18Transformer

__all__ = [
    "RESNET18_WEIGHTS_FILE",
    "build_resnet18_trunk",
    "find_resnet18_weights",
    "CoefficientLSTM",
    "CoefficientTransformer",
    "FRAME_MODELS",
    "MODEL_INPUTS",
    "MODEL_NAMES",
    "build_model",
    "InceptionI3d",
    "I3DClassifier",
    "ResNet18LSTM",
    "ResNet18Transformer",
]
