"""Options of ``facemorphic landmarks`` (the ``landmarks`` config block); single source of their defaults."""

from __future__ import annotations

from dataclasses import dataclass

from ..options import option

BACKENDS = ("auto", "face_alignment", "dlib", "truth")


@dataclass(frozen=True)
class LandmarksOptions:
    backend: str = option("auto", "auto: face_alignment when its weights are in torch's hub cache, else dlib; "
                                  "truth: the synthetic ground truth", choices=BACKENDS)
    landmarks_type: str = option("2.5D", "face_alignment network: 2.5D (3DFAN x,y), 3D (adds depth), 2D (2DFAN)",
                                 choices=("2D", "2.5D", "3D"))
    device: str = option("auto", "face_alignment device: auto, cpu, cuda, cuda:N")
    batch_size: int = option(0, "frames per landmark-network batch (tracking lanes); 0: the backend's default "
                                "(dlib 1, face_alignment 32 on CUDA, 4 on CPU)", minimum=0)
    lane_frames: int = option(32, "frames each lane tracks per chunk", minimum=1)
    max_gap: int = option(5, "interpolate runs of at most this many frames without a face (0: never)", minimum=0)
    smooth: int = option(0, "Savitzky-Golay window in frames for temporal smoothing (0: off)", minimum=0)
    min_score: float | None = option(None, "face acceptance threshold (null: the backend's own, dlib HOG score 0, "
                                           "FAN mean heatmap peak 0.2)")
    flip: bool = option(True, "face_alignment: average with a horizontally flipped second pass")
    compile: bool = option(False, "face_alignment: torch.compile the networks")
