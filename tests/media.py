"""Small media writers for tests: MP4 (PyAV), timestamped JPEG folders, and hand-encoded EVT 3.0 RAW.

The RAW writer here is deliberately minimal and independent of the project's encoder (one TIME_HIGH,
TIME_LOW, ADDR_Y, ADDR_X word group per event), so tests of the project's reader and probe do not
check the project's code against itself.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

EVENT_DTYPE = np.dtype([("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])


def frame_pattern(k: int, width: int, height: int) -> np.ndarray:
    """A deterministic RGB frame that changes with k (a moving bright square on a gradient)."""
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.stack([(xx * 255 // max(width - 1, 1)), (yy * 255 // max(height - 1, 1)),
                    np.full_like(xx, 64)], axis=-1).astype(np.uint8)
    x0 = (8 * k) % max(width - 16, 1)
    img[height // 4: height // 4 + 16, x0: x0 + 16] = 255
    return img


def write_mp4(path: Path, n_frames: int, width: int = 64, height: int = 48, fps: int = 30) -> Path:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for k in range(n_frames):
            frame = av.VideoFrame.from_ndarray(frame_pattern(k, width, height), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_jpeg_folder(folder: Path, times_s, width: int = 64, height: int = 48,
                      start: dt.datetime = dt.datetime(2024, 3, 1, 10, 15, 30, 250000)) -> Path:
    """JPEG frames named frame_{k}_{HH:MM:SS.ffffff}.jpg with the given times (seconds after ``start``)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for k, t in enumerate(times_s):
        stamp = (start + dt.timedelta(seconds=float(t))).strftime("%H:%M:%S.%f")
        Image.fromarray(frame_pattern(k, width, height)).save(folder / f"frame_{k}_{stamp}.jpg", quality=90)
    return folder


def evt3_header(width: int = 1280, height: int = 720) -> bytes:
    return (
        "% camera_integrator_name Prophesee\n"
        "% date 2024-03-01 10:15:30\n"
        "% evt 3.0\n"
        f"% format EVT3;height={height};width={width}\n"
        f"% geometry {width}x{height}\n"
        "% integrator_name Prophesee\n"
        "% plugin_integrator_name Prophesee\n"
        "% plugin_name hal_plugin_imx636_evk4\n"
        "% sensor_generation 4.2\n"
        "% end\n"
    ).encode()


def encode_evt3_simple(events: np.ndarray) -> bytes:
    """EVT 3.0 words for time-sorted events: TIME_HIGH, TIME_LOW, ADDR_Y (master), ADDR_X per event."""
    words = []
    for e in events:
        t = int(e["t"])
        words += [
            0x8000 | ((t >> 12) & 0xFFF),  # EVT_TIME_HIGH
            0x6000 | (t & 0xFFF),  # EVT_TIME_LOW
            0x0000 | (int(e["y"]) & 0x7FF),  # EVT_ADDR_Y, master camera
            0x2000 | (int(e["p"]) & 1) << 11 | (int(e["x"]) & 0x7FF),  # EVT_ADDR_X
        ]
    return np.asarray(words, dtype="<u2").tobytes()


def write_evt3_simple(path: Path, events: np.ndarray, width: int = 1280, height: int = 720) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(evt3_header(width, height) + encode_evt3_simple(events))
    return path


def random_events(n: int, t0: int, duration_us: int, seed: int = 0, width: int = 1280, height: int = 720):
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, EVENT_DTYPE)
    ev["t"] = np.sort(t0 + rng.integers(0, duration_us, n))
    ev["x"] = rng.integers(0, width, n)
    ev["y"] = rng.integers(0, height, n)
    ev["p"] = rng.integers(0, 2, n)
    return ev
