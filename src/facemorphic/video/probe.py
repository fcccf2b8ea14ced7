"""Probe an RGB stream without decoding its pixels: frame count, size, rate and per-frame times.

Two sources are supported, the two ways FACEMORPHIC-style recordings store RGB:

* an MP4 (or any container PyAV opens): frame times come from the packets' presentation timestamps,
  read by demuxing only, so probing an hour of video costs seconds, not a decode;
* a folder of JPEG frames named ``frame_{k}_{HH:MM:SS.ffffff}.jpg``: the frame index orders the frames
  and the time in the name is the capture time.

Times are returned in seconds relative to the first frame (RGB time zero), which is what the manifest's
``event_offset_us`` maps into the event clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputFileError

#: ``frame_{k}_{HH:MM:SS.ffffff}.jpg`` (also .jpeg/.png, any case); the fraction may have 1-9 digits.
JPEG_FRAME_NAME = re.compile(
    r"^frame_(?P<index>\d+)_(?P<h>\d{1,2})[:\-_](?P<m>\d{2})[:\-_](?P<s>\d{2})(?:\.(?P<frac>\d{1,9}))?\.(?:jpe?g|png)$",
    re.IGNORECASE,
)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


@dataclass(frozen=True)
class RgbInfo:
    """What the manifest records about one RGB stream."""

    path: str
    kind: str  # "video" or "jpeg_folder"
    n_frames: int
    fps: float  # 1 / median frame period
    width: int
    height: int
    times_s: np.ndarray  # float64 [n_frames], relative to the first frame
    #: frame numbers missing from the stream: gaps in the JPEG names' indices, or in the video's timestamps
    dropped_frames: tuple[int, ...] = ()
    #: video only: the presentation timestamp (stream ticks) of frame 0, the smallest packet pts. The reader
    #: measures frame times from it too, so frames, landmarks and event windows share one clock even where
    #: the container's start_time differs (edit lists, B-frame delay).
    first_pts: int | None = None

    @property
    def duration_s(self) -> float:
        """From the first frame's time to the end of the last frame (last frame lasts one median period)."""
        if self.n_frames == 0:
            return 0.0
        return float(self.times_s[-1] + 1.0 / self.fps)


def parse_jpeg_frame_name(name: str) -> tuple[int, float]:
    """Return ``(frame_index, seconds since midnight)`` from a JPEG frame file name.

    Raises ``ValueError`` naming the file when the name does not carry a parsable time.
    """
    match = JPEG_FRAME_NAME.match(name)
    if match is None:
        raise ValueError(f"frame name {name!r} does not match frame_{{k}}_{{HH:MM:SS.ffffff}}.jpg")
    frac = match["frac"] or "0"
    seconds = int(match["h"]) * 3600 + int(match["m"]) * 60 + int(match["s"]) + int(frac) / 10 ** len(frac)
    if int(match["m"]) > 59 or int(match["s"]) > 60:
        raise ValueError(f"frame name {name!r} has an impossible time")
    return int(match["index"]), seconds


def _median_fps(times_s: np.ndarray, path) -> float:
    if len(times_s) < 2:
        return 30.0  # one frame: no period to measure; the FACEMORPHIC rate
    period = float(np.median(np.diff(times_s)))
    if not period > 0:
        raise InputFileError(path, "frame times do not increase")
    return 1.0 / period


def _probe_jpeg_folder(folder: Path) -> RgbInfo:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputFileError(folder, "JPEG folder holds no frames")
    parsed = []
    for file in files:
        try:
            parsed.append(parse_jpeg_frame_name(file.name))
        except ValueError as exc:
            raise InputFileError(file, str(exc)) from None
    indices = np.array([p[0] for p in parsed])
    if len(np.unique(indices)) != len(indices):
        raise InputFileError(folder, "two JPEG frames share one frame index")
    order = np.argsort(indices, kind="stable")
    clock = np.array([p[1] for p in parsed], dtype=np.float64)[order]
    # A recording that runs past midnight wraps the wall clock: unwrap by whole days.
    clock = clock + 86400.0 * np.concatenate([[0], np.cumsum(np.diff(clock) < -43200.0)])
    times = clock - clock[0]
    if np.any(np.diff(times) <= 0):
        raise InputFileError(folder, "frame times in the JPEG names do not increase with the frame index")
    from PIL import Image

    first = files[order[0]]
    try:
        with Image.open(first) as image:
            width, height = image.size
    except Exception as exc:  # PIL raises several types for corrupt files
        raise InputFileError(first, f"cannot read image: {exc}") from None
    sorted_indices = indices[order]
    dropped = tuple(int(k) for k in np.setdiff1d(np.arange(sorted_indices[0], sorted_indices[-1] + 1), sorted_indices))
    return RgbInfo(str(folder), "jpeg_folder", len(files), _median_fps(times, folder), width, height, times, dropped)


def _probe_video(path: Path) -> RgbInfo:
    import av

    try:
        container = av.open(str(path))
    except Exception as exc:  # PyAV raises FFmpeg errors of many classes
        raise InputFileError(path, f"cannot open video: {exc}") from None
    with container:
        if not container.streams.video:
            raise InputFileError(path, "container has no video stream")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        time_base = stream.time_base
        pts = []
        try:
            for packet in container.demux(stream):
                if packet.pts is not None and packet.size > 0:
                    pts.append(packet.pts)
        except Exception as exc:
            if not pts:
                raise InputFileError(path, f"cannot read video packets: {exc}") from None
    if not pts:
        raise InputFileError(path, "video has no frames")
    # Packets arrive in decode order; presentation order is the sorted pts (B-frames reorder).
    ticks = np.sort(np.asarray(pts, dtype=np.int64))
    times = (ticks - ticks[0]).astype(np.float64) * float(time_base)
    fps = _median_fps(times, path)
    return RgbInfo(str(path), "video", len(times), fps, int(width), int(height), times, _timeline_gaps(times, fps),
                   first_pts=int(ticks[0]))


def _timeline_gaps(times_s: np.ndarray, fps: float) -> tuple[int, ...]:
    """Frame numbers (at the median rate) with no frame: a video whose capture dropped frames keeps
    their timestamps' gap, so a gap of k periods means k - 1 frames were never written."""
    slots = np.rint(times_s * fps).astype(np.int64)
    return tuple(int(k) for k in np.setdiff1d(np.arange(slots[-1] + 1), slots))


def probe_rgb(path: str | Path) -> RgbInfo:
    """Probe an MP4 file or a JPEG-frame folder; raise :class:`InputFileError` naming the file on failure."""
    path = Path(path)
    if path.is_dir():
        return _probe_jpeg_folder(path)
    if not path.exists():
        raise InputFileError(path, "RGB stream does not exist")
    return _probe_video(path)


def read_frame_times(path: str | Path) -> np.ndarray:
    """Per-frame capture times in seconds relative to the first frame (float64 ``[T]``)."""
    return probe_rgb(path).times_s
