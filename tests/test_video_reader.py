"""facemorphic.video.reader: MP4 / JPEG-folder / image decoding with times, checked against plain PyAV and PIL."""

from __future__ import annotations

import av
import numpy as np
import pytest
from PIL import Image

from facemorphic.errors import InputFileError
from facemorphic.video import open_rgb, write_mp4


def pattern_frames(count: int, height: int = 48, width: int = 64) -> list[np.ndarray]:
    """Frames whose mean grey level encodes their index (robust to lossy coding)."""
    frames = []
    for k in range(count):
        frame = np.zeros((height, width, 3), np.uint8)
        frame[:] = (8 * k) % 256
        frame[: height // 2, : width // 2, 0] = 255 - (8 * k) % 256
        frames.append(frame)
    return frames


def test_mp4_batches_match_plain_pyav_decode(tmp_path):
    path = tmp_path / "clip.mp4"
    write_mp4(path, pattern_frames(23), fps=30.0)
    reader = open_rgb(path)
    batches = list(reader.batches(8))
    assert [len(b) for b in batches] == [8, 8, 7]
    images = np.concatenate([b.images for b in batches])
    indices = np.concatenate([b.indices for b in batches])
    times = np.concatenate([b.times_s for b in batches])
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        reference = [(f.to_ndarray(format="rgb24"), float((f.pts - stream.start_time) * stream.time_base))
                     for f in container.decode(stream)]
    assert images.dtype == np.uint8 and images.shape == (23, 48, 64, 3)
    np.testing.assert_array_equal(indices, np.arange(23))
    np.testing.assert_array_equal(images, np.stack([r[0] for r in reference]))
    np.testing.assert_allclose(times, [r[1] for r in reference], atol=1e-9)
    np.testing.assert_allclose(times, np.arange(23) / 30.0, atol=1e-4)
    assert reader.problems == [] and reader.n_decoded == 23


def jpeg_name(index: int, seconds: float) -> str:
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"frame_{index}_{int(h):02d}:{int(m):02d}:{s:09.6f}.jpg"


def test_jpeg_folder_order_times_and_corrupt_frame(tmp_path):
    folder = tmp_path / "frames_1"
    folder.mkdir()
    start = 13 * 3600 + 59 * 60 + 59.95  # crosses a minute and hour boundary
    frame_times = start + np.array([0.0, 0.033, 0.067, 0.101, 0.133, 0.170, 0.2, 0.233, 0.267, 0.3, 0.334, 0.367])
    frames = pattern_frames(len(frame_times))
    for k, (frame, t) in enumerate(zip(frames, frame_times)):
        Image.fromarray(frame).save(folder / jpeg_name(k, t), quality=95)
    corrupt = folder / jpeg_name(7, frame_times[7])
    corrupt.write_bytes(corrupt.read_bytes()[:200])  # truncated JPEG
    reader = open_rgb(folder)
    assert reader.kind == "jpeg_folder" and reader.info.n_frames == 12
    batch = next(reader.batches(64))
    # frame_10 sorts before frame_2 by name; the reader orders by the index in the name
    np.testing.assert_array_equal(batch.indices, [0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11])
    np.testing.assert_allclose(batch.times_s, (frame_times - start)[batch.indices], atol=1e-6)
    means = batch.images[:, 30:, 40:, 1].mean(axis=(1, 2))
    np.testing.assert_allclose(means, 8 * batch.indices, atol=3)
    assert len(reader.problems) == 1 and "frame 7" in reader.problems[0]


def test_single_image_is_one_frame(tmp_path):
    path = tmp_path / "photo.png"
    image = pattern_frames(3)[2]
    Image.fromarray(image).save(path)
    batches = list(open_rgb(path).batches(4))
    assert len(batches) == 1
    np.testing.assert_array_equal(batches[0].images[0], image)
    assert batches[0].times_s.tolist() == [0.0] and batches[0].indices.tolist() == [0]


def test_truncated_stream_ends_early_without_error(tmp_path):
    path = tmp_path / "clip.mkv"  # Matroska stays readable up to a cut, unlike MP4 with its index at the end
    frames = pattern_frames(40)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"g": "5"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    reader = open_rgb(path)
    decoded = np.concatenate([b.indices for b in reader.batches(16)])
    assert 5 <= len(decoded) < 40
    assert np.all(np.diff(decoded) > 0) and decoded.max() < reader.info.n_frames


def test_unreadable_inputs_name_the_file(tmp_path):
    with pytest.raises(InputFileError, match="missing.mp4"):
        open_rgb(tmp_path / "missing.mp4")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 1000)
    with pytest.raises(InputFileError, match="broken.mp4"):
        open_rgb(broken)


@pytest.mark.parametrize("first_pts, bframes, options", [(0, 2, {"use_editlist": "0"}), (7, 3, {})])
def test_reader_and_probe_share_one_clock_with_b_frame_delay(tmp_path, first_pts, bframes, options):
    """Frame k of the reader is frame k of the probe (and so of the events' windows): both measure time from
    the smallest packet pts, whatever the container's start_time or the B-frame delay. Frame k is painted
    with grey level 10 k, so its content says which frame it is."""
    import fractions

    path = tmp_path / "bframes.mp4"
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.options = {"bf": str(bframes), "crf": "1"}
        stream.time_base = fractions.Fraction(1, 30)
        for k in range(20):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 10 * k, np.uint8), format="rgb24")
            frame.pts, frame.time_base = first_pts + k, stream.time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    reader = open_rgb(path)
    assert reader.info.n_frames == 20 and reader.info.times_s[0] == 0.0
    frames = [(batch_index, time_s, image) for batch in reader.batches(8)
              for batch_index, time_s, image in zip(batch.indices, batch.times_s, batch.images)]
    assert [index for index, _, _ in frames] == list(range(20))
    np.testing.assert_allclose([time_s for _, time_s, _ in frames], np.arange(20) / 30, atol=1e-6)
    grey = [float(image.mean()) for _, _, image in frames]
    np.testing.assert_allclose(grey, 10 * np.arange(20), atol=3)
