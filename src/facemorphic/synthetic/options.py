"""Options of ``facemorphic synth`` and ``facemorphic synth-corpus``: the ``synthetic`` config block
(without ``n_users``, which says how many users the workflow asks for) and its ``corpus`` block.

Single source of each value's default and help (docs/ARCHITECTURE.md, "How a value travels").
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import ACTION_UNITS
from ..errors import FacemorphicError
from ..options import option


@dataclass(frozen=True)
class SynthOptions:
    """One synthetic user's recordings and their simulated event sensor."""

    seed: int = option(0, "seed of the generator; the same seed gives the same bytes")
    repetitions: int = option(2, "recordings per Action Unit and user", minimum=1)
    free: int = option(1, "free-interaction recordings per user (AU_FREE)", minimum=0)
    reading: int = option(4, "sentence-reading recordings per user (AU_READING)", minimum=0)
    aus: list[int] = option(list(ACTION_UNITS), "Action Units to record (a subset of the 24 FACEMORPHIC AUs)",
                            choices=ACTION_UNITS)
    au_duration_s: float = option(1.5, "length of each AU recording in seconds", minimum=0.1)
    free_duration_s: float = option(3.0, "length of each free-interaction recording in seconds", minimum=0.1)
    reading_duration_s: float = option(3.0, "length of each reading recording in seconds", minimum=0.1)
    fps: int = option(30, "RGB frame rate", minimum=1)
    rgb_format: str = option("mp4", "RGB stream: H.264 MP4 files or folders of timestamped JPEG frames",
                             choices=("mp4", "jpeg"))
    min_substeps: int = option(1, "event renders per RGB frame period at least (1: as many as the motion needs, "
                                  "see max_motion_px)", minimum=1)
    max_substeps: int = option(24, "event renders per RGB frame period at most (24: 720 Hz at 30 fps)", minimum=1)
    max_motion_px: float = option(0.5, "largest vertex motion between event renders, in sensor pixels",
                                  minimum=0.01)
    contrast: float = option(0.2, "mean contrast threshold of the simulated sensor, log-intensity units",
                             minimum=0.01)
    contrast_sigma: float = option(0.03, "per-pixel spread (standard deviation) of the contrast thresholds",
                                   minimum=0)
    refractory_us: float = option(500.0, "refractory period of the simulated pixels, microseconds", minimum=0)
    noise_rate_hz: float = option(0.01, "background noise events per pixel per second", minimum=0)

    def check(self) -> None:
        if not self.aus:
            raise FacemorphicError("option 'aus': at least one Action Unit is needed")
        if self.min_substeps > self.max_substeps:
            raise FacemorphicError(f"option 'min_substeps' ({self.min_substeps}) is above 'max_substeps' "
                                   f"({self.max_substeps})")


@dataclass(frozen=True)
class CorpusOptions:
    """The synthetic 3D scan corpus (D3DFACS- and VOCASET-style) the default 3DMM is learned from."""

    seed: int = option(0, "seed of the corpus (the workflow passes synthetic.seed)")
    d3dfacs_subjects: int = option(10, "subjects with D3DFACS-style AU sequences", minimum=1)
    sequences_per_subject: int = option(8, "AU sequences per D3DFACS-style subject (half single AUs, half "
                                           "combinations)", minimum=1)
    frames_per_sequence: int = option(5, "PLY frames per sequence: neutral, rise, apex, fall, release", minimum=3)
    vocaset_subjects: int = option(12, "subjects with VOCASET-style neutral templates and speech sequences (12 "
                                       "+ 10 D3DFACS-style: the paper's 22 identities)",
                                   minimum=0)
    vocaset_sentences: int = option(2, "sentences per VOCASET-style subject", minimum=1)
    vocaset_frames: int = option(16, "frames per sentence at 60 fps", minimum=2)
    noise_mm: float = option(0.2, "scanner noise per vertex, millimetres", minimum=0)
