"""Safe output files (``keynet/files.py``): a final path is replaced only by a complete file, never a special file,
with the umask's permissions; temporary files of dead writers are cleaned; JSON Lines survive interruption."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from keynet.errors import InputError, OutputError
from keynet.files import (
    JsonLinesLog,
    atomic_path,
    atomic_write_text,
    check_output_path,
    read_json_lines,
    remove_stale_temporaries,
)


def dead_pid() -> int:
    """The id of a process that has ended."""
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)


def test_special_files_folders_and_links_are_refused(tmp_path):
    (tmp_path / "real.txt").write_text("x")
    (tmp_path / "link.txt").symlink_to(tmp_path / "real.txt")
    for path, message in ((tmp_path, "is a folder"), ("/dev/null", "not a regular file"),
                          (tmp_path / "link.txt", "symbolic link"), (tmp_path / "real.txt" / "inner", "not a folder")):
        with pytest.raises(OutputError, match=message):
            check_output_path(path)
    assert check_output_path(tmp_path / "new" / "file.txt") == tmp_path / "new" / "file.txt"


def test_an_output_with_another_suffix_is_refused_before_the_path_is_looked_at(tmp_path):
    (tmp_path / "clip.MP4").write_text("x")
    assert check_output_path(tmp_path / "clip.MP4", "--out", (".mp4", ".avi")) == tmp_path / "clip.MP4"
    with pytest.raises(InputError, match=r"--out .*clip\.txt: expected a video file name ending in \.mp4, \.avi$"):
        check_output_path(tmp_path / "clip.txt", "--out", (".mp4", ".avi"), "video")
    with pytest.raises(InputError, match=r"expected a \.json, \.yaml file name$"):
        check_output_path(tmp_path, "calibration file", [".json", ".yaml"])  # a folder without the suffix
    (tmp_path / "folder.avi").mkdir()
    with pytest.raises(OutputError, match="folder.avi is a folder"):
        check_output_path(tmp_path / "folder.avi", "--out", (".mp4", ".avi"), "video")


def test_a_failed_or_unverified_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer crashed")

    def refuse(tmp):
        raise OutputError("incomplete")

    with pytest.raises(OutputError, match="incomplete"), atomic_path(path, verify=refuse) as tmp:
        tmp.write_text("new but not verified")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_new_files_follow_the_umask_and_replaced_files_keep_their_mode(tmp_path):
    previous = os.umask(0o027)
    try:
        atomic_write_text("a", tmp_path / "new.txt")
    finally:
        os.umask(previous)
    assert (tmp_path / "new.txt").stat().st_mode & 0o777 == 0o640
    (tmp_path / "new.txt").chmod(0o604)
    atomic_write_text("b", tmp_path / "new.txt")
    assert (tmp_path / "new.txt").stat().st_mode & 0o777 == 0o604


def test_temporaries_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    stale = tmp_path / f".video.{dead_pid()}.x1y2z3.tmp.mp4"
    mine = tmp_path / f".video.{os.getpid()}.abcdef.tmp.mp4"
    other = tmp_path / ".notes.tmp"  # not one of ours
    for p in (stale, mine, other):
        p.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert mine.exists() and other.exists()


def test_an_unwritable_folder_is_an_output_error(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="not writable"):
            atomic_write_text("x", folder / "f.txt")
    finally:
        folder.chmod(0o700)


def test_a_json_lines_log_touches_nothing_until_its_first_record(tmp_path):
    path = tmp_path / "run.jsonl"
    path.write_text("previous run\n")
    log = JsonLinesLog(path, {"kind": "run"})
    log.close({"kind": "summary"})
    assert path.read_text() == "previous run\n"
    log = JsonLinesLog(path, {"kind": "run"})
    for i in range(3):
        log.write({"kind": "frame", "frame": i})
        assert [r.get("frame") for r in read_json_lines(path)] == [None, *range(i + 1)]  # on disk as it goes
    log.close({"kind": "summary", "frames": 3})
    assert [r["kind"] for r in read_json_lines(path)] == ["run", "frame", "frame", "frame", "summary"]


def test_a_torn_last_line_of_a_killed_writer_is_left_out(tmp_path):
    path = tmp_path / "killed.jsonl"
    path.write_text(json.dumps({"kind": "run"}) + "\n" + json.dumps({"kind": "frame"}) + '\n{"kind": "fr')
    assert read_json_lines(path) == [{"kind": "run"}, {"kind": "frame"}]
