"""Write RGB frames to an H.264 MP4 with PyAV (test fixtures, benchmarks, previews)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterable

import numpy as np

from ..fileio import atomic_path


def write_mp4(path: str | Path, frames: Iterable[np.ndarray], fps: float = 30.0, crf: int = 18) -> int:
    """Encode RGB uint8 frames ``[H, W, 3]`` (even H and W) as H.264/yuv420p; returns the frame count.

    Frame k gets presentation time k / fps. The file appears only when complete.
    """
    import av

    count = 0
    with atomic_path(path) as tmp:
        with av.open(str(tmp), "w") as container:
            stream = None
            for frame in frames:
                if stream is None:
                    stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
                    stream.height, stream.width = frame.shape[:2]
                    stream.pix_fmt = "yuv420p"
                    stream.options = {"crf": str(crf)}
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame),
                                                                       format="rgb24")):
                    container.mux(packet)
                count += 1
            if stream is not None:
                for packet in stream.encode():
                    container.mux(packet)
    return count
