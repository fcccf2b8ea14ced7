"""RGB video access: MP4 through PyAV and folders of timestamped JPEG frames, behind one interface."""

from .probe import RgbInfo, parse_jpeg_frame_name, probe_rgb, read_frame_times
from .reader import FrameBatch, RgbReader, open_rgb, read_rgb_frames
from .writer import write_mp4

__all__ = [
    "FrameBatch",
    "RgbInfo",
    "RgbReader",
    "open_rgb",
    "parse_jpeg_frame_name",
    "probe_rgb",
    "read_frame_times",
    "read_rgb_frames",
    "write_mp4",
]
