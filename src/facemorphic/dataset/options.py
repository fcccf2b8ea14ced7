"""Options of ``facemorphic split`` (the ``split`` config block); single source of their defaults."""

from __future__ import annotations

from dataclasses import dataclass

from ..options import option
from .splits import PROTOCOLS


@dataclass(frozen=True)
class IngestOptions:
    sync: str = option("first_event", "how event_offset_us is found without a sync CSV: first_event (the first "
                                      "event's time, a guess, recorded as first_event_guess) or triggers (RGB frame "
                                      "k = the k-th rising trigger edge in the RAW)",
                       choices=("first_event", "triggers"))


@dataclass(frozen=True)
class SplitOptions:
    protocol: str = option("video", "video: stratified by AU over recordings, users shared (the paper's); "
                                    "subject: whole users held out", choices=PROTOCOLS)
    test_fraction: float = option(0.2, "fraction of recordings (video) or users (subject) in the test split",
                                  minimum=0.0, maximum=0.99)
    seed: int = option(0, "seed of the split")
