"""The paper's models: frame-sequence networks over event or RGB frames, and coefficient-only classifiers.

Every model maps a clip to ``(logits [B, 24], alpha [B, L, K] or None)``: AU class scores for the clip
and, for the frame models, the per-frame 3DMM AU coefficients that the cross-modal loss supervises.
Frames go in as uint8 ``[B, L, 3, H, W]``; each model converts and normalises them itself, so the data
loader moves compact uint8 tensors and a cached-feature path sees exactly what the full model sees.
"""

from __future__ import annotations

from .._lazy import lazy_exports

#: name -> the submodule that defines it, imported on first use (see facemorphic._lazy)
_EXPORTS = {name: module for module, names in {
    ".backbones": ("RESNET18_WEIGHTS_FILE", "build_resnet18_trunk", "find_resnet18_weights"),
    ".coefficients": ("CoefficientLSTM", "CoefficientTransformer"),
    ".factory": ("FRAME_MODELS", "MODEL_INPUTS", "MODEL_NAMES", "build_model"),
    ".i3d": ("InceptionI3d", "I3DClassifier"),
    ".sequence": ("ResNet18LSTM", "ResNet18Transformer"),
}.items() for name in names}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
