"""Options of ``facemorphic shards`` (the ``shards`` config block); single source of their defaults."""

from __future__ import annotations

from dataclasses import dataclass

from ..options import option

CROPS = ("center", "full")
#: frame streams a shard can hold: event frames, RGB frames (both cropped by ``crop``) and RGB frames
#: cropped to the face (``rgb_face``: the smoothed landmark box, :mod:`.face`)
MODALITIES = ("events", "rgb", "rgb_face")


@dataclass(frozen=True)
class ShardsOptions:
    size: int = option(64, "model input size in pixels (square)", minimum=8)
    crop: str = option("center", "center: central square, then resize; full: whole frame squashed (events and rgb)",
                       choices=CROPS)
    num_shards: int = option(1, "shard files per split", minimum=1)
    modalities: list[str] = option(["events", "rgb"],
                                   "frame streams packed besides the coefficients (rgb_face: RGB cropped to the "
                                   "face, from the landmarks files)", choices=MODALITIES)
    face_margin: float = option(1.25, "rgb_face: side of the square crop over the larger side of the smoothed "
                                      "landmark box", minimum=1.0)
    face_smoothing_frames: int = option(7, "rgb_face: centred moving-median window (frames) over the face box "
                                           "centre and side; 1 turns smoothing off, an even value is rounded up",
                                        minimum=1)
