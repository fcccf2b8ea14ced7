"""Options of ``facemorphic events`` (the ``events`` config block); single source of their defaults.

The block holds the parameters of every representation; a run uses only the chosen one's
(``REPRESENTATIONS[representation].parameters``), so the workflow can pass just those and a change to
another representation's parameter reruns nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import FacemorphicError
from ..options import option
from .representations import (
    PALETTES,
    REPRESENTATIONS,
    Representation,
    build_representation,
)


@dataclass(frozen=True)
class EventsOptions:
    representation: str = option("periodic_frame", "event representation drawn per frame window",
                                 choices=tuple(REPRESENTATIONS))
    palette: str = option("dark", "periodic_frame colours (gray: one channel)", choices=tuple(PALETTES))
    bins: int = option(5, "voxel_grid bins B (>= 2) / tbr bins N (<= 8)", minimum=1)
    tau_us: float = option(10000.0, "time_surface decay constant in microseconds")
    width: int = option(320, "frame width in pixels (0 with height 0: the sensor's size)", minimum=0)
    height: int = option(0, "frame height in pixels; 0: from width and the sensor's aspect ratio; a set height "
                            "must keep the sensor's aspect ratio within 1 px, else that recording fails",
                         minimum=0)
    subwindows: int = option(1, "S sub-windows per RGB frame interval, stored as S*C channels", minimum=1)
    accumulation_us: int = option(0, "draw only the last N us of each (sub-)window (0: all of it)", minimum=0)

    def check(self) -> None:
        """A height needs a width (the height is derived from the width, never the other way); the
        representation's own parameters are valid. Whether a set size keeps a sensor's aspect ratio is
        known only per recording (:func:`.frames.event_frame_size`)."""
        if self.width == 0 and self.height > 0:
            raise FacemorphicError(f"options 'width' and 'height': a height needs a width (width 0 and height 0 "
                                   f"is the sensor size; height 0 derives it from width), got "
                                   f"{self.width}x{self.height}")
        self.build_representation()

    def build_representation(self) -> Representation:
        return build_representation(self.representation, palette=self.palette, bins=self.bins,
                                    tau_us=self.tau_us)
