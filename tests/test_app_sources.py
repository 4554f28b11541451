"""The app's frame sources: videos, folders, cameras and bad input, each failure a clear OSError."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from app.frame_sources import FolderSource, file_fps, open_source


def write_video(path, n=5, fps=20.0):
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (64, 48))
    for i in range(n):
        w.write(np.full((48, 64, 3), 40 * i, np.uint8))
    w.release()


def read_all(source):
    frames = []
    while (f := source.read()) is not None:
        frames.append(f)
    source.close()
    return frames


def test_video_reads_every_frame_then_ends(tmp_path):
    write_video(tmp_path / "v.mp4", n=7, fps=20)
    frames = read_all(open_source(str(tmp_path / "v.mp4")))
    assert len(frames) == 7 and frames[0].shape == (48, 64, 3) and frames[0].dtype == np.uint8
    assert file_fps(tmp_path / "v.mp4") == pytest.approx(20)


def test_folder_reads_images_in_name_order_as_bgr(tmp_path):
    for i in (2, 0, 1):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((40, 50), 10 * i, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    frames = read_all(open_source(str(tmp_path)))
    assert [int(f[0, 0, 0]) for f in frames] == [0, 10, 20]
    assert frames[0].shape == (40, 50, 3)


def test_missing_and_corrupt_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        open_source(str(tmp_path / "nope.mp4"))
    (tmp_path / "bad.mp4").write_bytes(b"not a video at all" * 100)
    with pytest.raises(OSError, match="bad.mp4"):
        read_all(open_source(str(tmp_path / "bad.mp4")))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(OSError, match="no images"):
        FolderSource(empty)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "0.png").write_bytes(b"garbage")
    with pytest.raises(OSError, match="0.png"):
        read_all(open_source(str(tmp_path / "broken")))


def test_a_camera_that_does_not_exist_is_a_clear_error():
    with pytest.raises(OSError, match="camera 97"):
        open_source("camera:97")
