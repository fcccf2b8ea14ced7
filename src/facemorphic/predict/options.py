"""Options of ``facemorphic predict`` (the ``predict`` config block); single source of their defaults.

The event-frame settings are not here: they are the ``events`` block the run's frames were made with
(passed as ``--events-options``), so predict draws frames exactly as the events stage did.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..options import option

SYNC_MODES = ("first_event", "triggers")


@dataclass(frozen=True)
class PredictOptions:
    fps: float = option(30.0, "frame rate of the event frames when no RGB stream is given (the RGB rate the "
                              "run was trained at)", minimum=0.1)
    stride: int = option(0, "step of the sliding model windows in frames (0: half a clip, as training's "
                            "eval_stride)", minimum=0)
    batch_windows: int = option(16, "model windows per forward pass", minimum=1)
    sync: str = option("first_event", "with --rgb and no --event-offset-us: first_event (RGB time zero is the "
                                      "first event, ingest's guess) or triggers (the RAW's rising trigger "
                                      "edges are the RGB frame times)", choices=SYNC_MODES)
    video_height: int = option(240, "height in pixels of each panel of the --video output", minimum=16)
