"""Options of ``facemorphic shards`` (the ``shards`` config block); single source of their defaults."""

from __future__ import annotations

from dataclasses import dataclass

from ..options import option

CROPS = ("center", "full")
MODALITIES = ("events", "rgb")


@dataclass(frozen=True)
class ShardsOptions:
    size: int = option(64, "model input size in pixels (square)", minimum=8)
    crop: str = option("center", "center: central square, then resize; full: whole frame squashed", choices=CROPS)
    num_shards: int = option(1, "shard files per split", minimum=1)
    modalities: list[str] = option(["events", "rgb"], "frame streams packed besides the coefficients",
                                   choices=MODALITIES)
