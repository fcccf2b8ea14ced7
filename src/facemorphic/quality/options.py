"""Options of the quality stage (config block ``quality``): the thresholds that decide ``train_ok``."""

from __future__ import annotations

from dataclasses import dataclass

from ..options import option


@dataclass(frozen=True)
class QualityOptions:
    """When a recording is kept out of training.

    ``max_rgb_decode_errors`` defaults to 0: libav reports an error only for damaged data (a clean stream
    gives none), FFmpeg conceals the damage with smeared macroblocks a model would learn from, and the
    count is of error messages rather than of frames, so any other tolerance would be arbitrary.
    """

    max_empty_event_fraction: float = option(
        0.5, "largest fraction of RGB frames whose event window lies outside the recorded events "
        "(a RAW far shorter than its RGB stream)", minimum=0.0, maximum=1.0)
    min_valid_landmark_fraction: float = option(
        0.001, "smallest fraction of frames with valid (detected or interpolated) landmarks; the default only "
        "keeps out recordings without any usable face", minimum=0.0, maximum=1.0)
    max_rgb_decode_errors: int = option(
        0, "most RGB decode errors (PyAV exceptions plus libav error messages, concealed damage included)",
        minimum=0)
