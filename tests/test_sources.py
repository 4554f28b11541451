"""Frame sources: folders, videos, bad files, cameras that do not exist."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from keynet.errors import InputError, SourceError
from keynet.sources import FolderSource, looping_video, open_source


def write_video(path, n: int) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for i in range(n):
        writer.write(np.full((48, 64, 3), i * 20, np.uint8))
    writer.release()


def test_folder_iterates_in_name_order(tmp_path):
    for i in (2, 0, 1):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((8, 8), i * 50, np.uint8))
    with open_source(tmp_path) as source:
        got = [(i, int(f[0, 0, 0]), t) for i, f, t in source]
    assert [g[:2] for g in got] == [(0, 0), (1, 50), (2, 100)]
    assert got[2][2] == pytest.approx(2 / 30)


def test_video_frames_and_fps(tmp_path):
    write_video(tmp_path / "v.mp4", 5)
    with open_source(tmp_path / "v.mp4") as source:
        frames = list(source)
        assert source.fps == pytest.approx(10)
    assert len(frames) == 5 and frames[0][1].shape == (48, 64, 3)


def test_skip_passes_frames_by_but_never_the_first_or_last_of_a_file(tmp_path):
    for i in range(4):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((8, 8), i * 50, np.uint8))
    write_video(tmp_path / "v.mp4", 4)
    with open_source(tmp_path) as folder, open_source(tmp_path / "v.mp4") as video:
        for source, last_value in ((folder, 150), (video, 60)):  # frame 3 of each
            assert source.read() is not None
            assert source.skip() and source.skip()  # frames 1 and 2 passed by
            assert not source.skip()  # frame 3 is the last: it is read
            assert int(source.read()[0, 0, 0]) == pytest.approx(last_value, abs=6)
            assert source.read() is None


@pytest.mark.parametrize("content", [b"", b"\x00" * 100])
def test_empty_or_corrupt_video(tmp_path, content):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    with pytest.raises(SourceError, match="bad.mp4"):
        list(open_source(bad))


@pytest.mark.parametrize(("open_it", "error", "message"), [
    (lambda folder: open_source(folder / "nope.mp4"), SourceError, "nope.mp4"),
    (FolderSource, SourceError, "no images"),  # an empty folder
    (lambda _: open_source("camera:x"), InputError, "camera:N"),
    (lambda _: open_source("camera:97"), SourceError, "camera 97"),
], ids=["missing file", "empty folder", "camera without a number", "absent camera"])
def test_missing_inputs(tmp_path, open_it, error, message):
    with pytest.raises(error, match=message):
        open_it(tmp_path)


def test_unreadable_image_mid_folder_raises_naming_it(tmp_path):
    cv2.imwrite(str(tmp_path / "0.png"), np.zeros((8, 8), np.uint8))
    (tmp_path / "1.png").write_bytes(b"broken")
    source = open_source(tmp_path)
    assert source.read() is not None
    with pytest.raises(SourceError, match="1.png"):
        source.read()


def test_a_looping_video_starts_again_at_its_end(tmp_path):
    write_video(tmp_path / "v.mp4", 3)
    frames = looping_video(tmp_path / "v.mp4")
    values = [int(next(frames)[0, 0, 0]) for _ in range(7)]
    frames.close()
    assert values[3:6] == values[:3] and values[6] == values[0]


def test_a_truncated_video_is_reported_with_the_frames_it_declares(tmp_path):
    path = tmp_path / "cut.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(50):
        writer.write(rng.integers(0, 255, (48, 64, 3), np.uint8))
    writer.release()
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    read = 0
    with pytest.raises(SourceError, match=r"cut.avi declares 50 frames but ends after \d+: the file is truncated"):
        with open_source(path) as source:
            for _ in source:
                read += 1
    assert 0 < read < 50
