"""Decode RGB streams into batches of frames with their capture times, one interface for every source.

Three sources, read the same way (:func:`open_rgb`):

* a video file (MP4 or any container PyAV opens), decoded with PyAV; each frame's time comes from its own
  presentation timestamp, and its index is the position of that timestamp in the stream's sorted packet
  timestamps (:func:`facemorphic.video.probe.probe_rgb`), so a frame that fails to decode leaves a hole at
  the right index instead of shifting every later frame;
* a folder of ``frame_{k}_{HH:MM:SS.ffffff}.jpg`` files, ordered by ``k``, timed by the name;
* a single image file (one frame at time 0), for people who want landmarks of a photograph.

Corrupt data never stops the stream: a packet that does not decode, or a JPEG that cannot be read, is
skipped, logged and counted in :attr:`RgbReader.problems`; the consumer sees the gap in ``indices``.
Damage that FFmpeg *conceals* raises nothing (the decoder fills the broken macroblocks and hands out a
frame), so it would pass silently: :attr:`RgbReader.decode_errors` also counts the error-level messages
libav logs while decoding (captured with ``av.logging.Capture``), the only trace such damage leaves. A
stream that turns out shorter than its probe (or a manifest) says simply ends early; the consumer compares
:attr:`RgbReader.n_decoded` with what it expected.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputFileError
from .probe import IMAGE_SUFFIXES, RgbInfo, parse_jpeg_frame_name, probe_rgb

log = logging.getLogger(__name__)

#: Still-image files accepted as one-frame streams (besides the JPEG/PNG of frame folders).
STILL_IMAGE_SUFFIXES = IMAGE_SUFFIXES | {".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass
class FrameBatch:
    """Consecutive decoded frames of one stream.

    ``images`` is RGB uint8 ``[B, H, W, 3]``; ``indices`` (int64 ``[B]``) are the frames' positions in the
    stream (increasing, with gaps where frames could not be decoded); ``times_s`` (float64 ``[B]``) are
    their capture times relative to the stream's first frame.
    """

    images: np.ndarray
    indices: np.ndarray
    times_s: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)


@dataclass
class RgbReader:
    """A probed RGB stream; :meth:`batches` decodes it.

    ``info`` is the probe (frame count, size, rate and per-frame times); ``problems`` collects one line per
    frame that could not be decoded; ``n_decoded`` counts the frames delivered so far; ``decode_errors``
    counts the decode errors met so far: PyAV exceptions plus libav error messages (concealed damage).
    """

    path: Path
    kind: str  # "video", "jpeg_folder" or "image"
    info: RgbInfo
    problems: list[str] = field(default_factory=list)
    n_decoded: int = 0
    decode_errors: int = 0

    def batches(self, batch_size: int) -> Iterator[FrameBatch]:
        """Yield :class:`FrameBatch` objects of at most ``batch_size`` frames, in stream order."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        images: list[np.ndarray] = []
        indices: list[int] = []
        times: list[float] = []
        for index, time_s, image in self._frames():
            if images and image.shape != images[0].shape:
                yield self._batch(images, indices, times)
                images, indices, times = [], [], []
            images.append(image)
            indices.append(index)
            times.append(time_s)
            self.n_decoded += 1
            if len(images) == batch_size:
                yield self._batch(images, indices, times)
                images, indices, times = [], [], []
        if images:
            yield self._batch(images, indices, times)

    @staticmethod
    def _batch(images, indices, times) -> FrameBatch:
        return FrameBatch(np.stack(images), np.asarray(indices, np.int64), np.asarray(times, np.float64))

    def _frames(self) -> Iterator[tuple[int, float, np.ndarray]]:
        if self.kind == "video":
            yield from self._video_frames()
        elif self.kind == "jpeg_folder":
            yield from self._folder_frames()
        else:
            yield 0, 0.0, _read_image(self.path)

    def _problem(self, text: str) -> None:
        self.problems.append(text)
        log.warning("%s: %s", self.path, text)

    def _video_frames(self) -> Iterator[tuple[int, float, np.ndarray]]:
        import av

        times = self.info.times_s
        period = 1.0 / self.info.fps
        try:
            container = av.open(str(self.path))
        except Exception as exc:  # PyAV raises FFmpeg errors of many classes
            raise InputFileError(self.path, f"cannot open video: {exc}") from None
        with container, _LibavErrorCounter(self):
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            time_base = float(stream.time_base)
            first_pts = None
            next_index = 0
            packets = container.demux(stream)
            while True:
                try:
                    packet = next(packets)
                except StopIteration:
                    break
                except Exception as exc:  # a damaged container: keep what was decoded so far
                    self.decode_errors += 1
                    self._problem(f"demuxing stopped after frame {next_index}: {exc}")
                    break
                try:
                    decoded = packet.decode()
                except Exception as exc:
                    self.decode_errors += 1
                    self._problem(f"packet at pts {packet.pts} does not decode: {exc}")
                    continue
                for frame in decoded:
                    if frame.pts is not None:
                        if first_pts is None:  # the probe's clock: frame 0 is the smallest packet pts
                            first_pts = self.info.first_pts if self.info.first_pts is not None else frame.pts
                        time_s = (frame.pts - first_pts) * time_base
                        index = int(np.searchsorted(times, time_s - 0.5 * period))
                    else:
                        index = next_index
                    if index >= len(times) or index < next_index:
                        self._problem(f"frame with pts {frame.pts} lies outside the probed timeline; dropped")
                        continue
                    if index > next_index:
                        self._problem(f"frames {next_index}..{index - 1} missing (not decodable)")
                    next_index = index + 1
                    yield index, float(times[index]), frame.to_ndarray(format="rgb24")
            if next_index < len(times):
                self._problem(f"stream ended at frame {next_index} of {len(times)} probed")

    def _folder_frames(self) -> Iterator[tuple[int, float, np.ndarray]]:
        files = sorted(
            (p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
            key=lambda p: parse_jpeg_frame_name(p.name)[0],
        )
        for index, (file, time_s) in enumerate(zip(files, self.info.times_s)):
            try:
                image = _read_image(file)
            except InputFileError as exc:
                self.decode_errors += 1
                self._problem(f"frame {index} skipped: {exc}")
                continue
            yield index, float(time_s), image


class _LibavErrorCounter:
    """Adds to ``reader.decode_errors`` the error-level messages libav logs while the context is open.

    FFmpeg conceals most bitstream damage (``error while decoding MB``, ``Invalid NAL unit size``) and
    only logs it; PyAV forwards those logs when its level allows, so the level is raised to ERROR for the
    duration and restored afterwards. The capture is process-wide (``local=False``) because the decoder's
    worker threads (``thread_type = "AUTO"``) log from threads of their own.
    """

    def __init__(self, reader: "RgbReader"):
        self.reader = reader

    def __enter__(self):
        import av.logging

        self._previous_level = av.logging.get_level()
        av.logging.set_level(av.logging.ERROR)
        self._capture = av.logging.Capture(local=False)
        self._logs = self._capture.__enter__()
        return self

    def __exit__(self, *exc_info):
        import av.logging

        self._capture.__exit__(*exc_info)
        av.logging.set_level(self._previous_level)
        errors = [message for level, _, message in self._logs if level <= av.logging.ERROR]
        self.reader.decode_errors += len(errors)
        if errors:
            self.reader._problem(f"{len(errors)} libav decode error(s), e.g. {errors[0].strip()}")
        return False


def _read_image(path: Path) -> np.ndarray:
    """Read an image file as RGB uint8 ``[H, W, 3]`` (grey and RGBA converted), fully decoded now."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except Exception as exc:  # PIL raises several types for truncated or foreign files
        raise InputFileError(path, f"cannot read image: {exc}") from None


def open_rgb(path: str | Path) -> RgbReader:
    """Probe a video file, JPEG-frame folder or single image and return its reader.

    Raises :class:`InputFileError` naming the path when it does not exist or cannot be opened at all.
    """
    path = Path(path)
    if path.is_file() and path.suffix.lower() in STILL_IMAGE_SUFFIXES:
        image = _read_image(path)
        info = RgbInfo(str(path), "image", 1, 30.0, image.shape[1], image.shape[0], np.zeros(1))
        return RgbReader(path, "image", info)
    info = probe_rgb(path)
    return RgbReader(path, info.kind, info)


def read_rgb_frames(path: str | Path, batch_size: int = 64) -> Iterator[FrameBatch]:
    """Shorthand for ``open_rgb(path).batches(batch_size)``."""
    return open_rgb(path).batches(batch_size)
