"""``python main.py calibrate``: measure a camera's intrinsics from a printed chessboard, or print the board.

``calibrate --print-board board.pdf --board 9x6 --square-mm 25`` writes the board (PDF: squares of exactly 25 mm
at 100 % print scale; PNG: at ``--dpi``). ``calibrate --source VIDEO|IMAGE_DIR|camera:N --board 9x6 --square-mm 25
--out calib.json`` finds the board in the frames, keeps the views that differ, calibrates (OpenCV) and writes the
file ``track --calibration`` reads. A camera is read until ``--max-views`` views are kept or Ctrl+C; a file or
folder to its end (or ``--max-frames``). The output path is checked before any work and replaced only by a
complete calibration.
"""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from keynet.calibration import CALIBRATION_SUFFIXES, MIN_VIEWS, Calibrator, check_calibration_path, save_calibration
from keynet.chessboard import BOARD_SUFFIXES, ChessboardSpec, save_chessboard
from keynet.errors import InputError, SourceError
from keynet.files import check_output_path
from keynet.sources import FrameSource, open_source

from .errors import Interrupted, interruptible
from .options import count, positive_number
from .progress import progress_bar

ROUGH_RMS_PX = 1.0


def board_spec(args: argparse.Namespace) -> ChessboardSpec:
    """``--board COLSxROWS`` and ``--square-mm``."""
    return ChessboardSpec.parse(args.board, args.square_mm)


def collect_views(calibrator: Calibrator, source: FrameSource, max_frames: int) -> str:
    """Add the frames of ``source`` (up to ``max_frames``, 0: all; a camera until ``calibrator.max_views`` views)
    to ``calibrator``; returns why it stopped early (a signal's name, a source error), or ""."""
    bar = tqdm(source, total=len(source) or None, desc="finding the board", unit="frame")
    try:
        for index, frame, _stamp in bar:
            calibrator.add(frame)
            bar.set_postfix_str(f"{len(calibrator.views)} views")
            if max_frames and index + 1 >= max_frames:
                break
            if source.live and len(calibrator.views) >= calibrator.max_views:
                break
    except Interrupted as exc:
        return exc.signal_name
    except SourceError as exc:
        if calibrator.frames_seen == 0:
            raise
        return str(exc)
    finally:
        bar.close()
    return ""


@interruptible
def calibrate_command(args: argparse.Namespace) -> int:
    """The ``calibrate`` command (signals turned into ``Interrupted``)."""
    spec = board_spec(args)
    if args.print_board:
        if args.out:
            raise InputError("--print-board writes the board; --out is for a calibration with --source")
        check_output_path(args.print_board, "--print-board")
        path = save_chessboard(spec, args.print_board, dpi=args.dpi)
        print(f"wrote the {spec} to {path}" + (" (print at 100 %, no fit to page)" if path.suffix == ".pdf" else
                                                f" ({args.dpi:g} dpi)"))
        return 0
    if not args.out:
        raise InputError(f"--source needs --out FILE for the calibration ({', '.join(CALIBRATION_SUFFIXES)})")
    out = check_calibration_path(args.out)
    if args.max_views < MIN_VIEWS:
        raise InputError(f"--max-views {args.max_views}: a calibration needs at least {MIN_VIEWS} views")
    calibrator = Calibrator(spec, max_views=args.max_views, thorough=not args.fast)
    with open_source(args.source) as source:
        if source.live:
            print(f"show the {spec} to the camera at several places, distances and tilts; Ctrl+C ends",
                  file=sys.stderr)
        stopped = collect_views(calibrator, source, args.max_frames)
    if stopped:
        print(f"note: stopped reading {args.source} ({stopped}); calibrating from the views so far", file=sys.stderr)
    if calibrator.boards_found == 0:
        raise InputError(f"no {spec} found in the {calibrator.frames_seen} frames of {args.source}: check --board "
                         "(inner corners, 9x6 for 10 x 7 squares) and that the whole board is in view")
    coverage = calibrator.coverage()
    with progress_bar("calibrating") as progress:
        result = calibrator.calibrate(progress=progress)
    save_calibration(result, out)
    print(result.describe())
    print(f"{coverage.describe()}; board in {calibrator.boards_found} of {calibrator.frames_seen} frames; "
          f"wrote {out}")
    if result.rms_px > ROUGH_RMS_PX:
        print(f"note: the RMS error is over {ROUGH_RMS_PX:g} px: check --square-mm and --board, keep the board flat "
              "and avoid blurred frames", file=sys.stderr)
    return 0


def add_calibrate_command(commands: argparse._SubParsersAction) -> None:
    """The ``calibrate`` command."""
    defaults = ChessboardSpec()
    calibrator = Calibrator(defaults)
    p = commands.add_parser("calibrate", help="measure the camera's intrinsics from a printed chessboard (the "
                            "file track --calibration reads), or write the board for printing")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--source", help="video file, image folder or camera:N showing the printed board")
    what.add_argument("--print-board", metavar="FILE",
                      help=f"write the board to print ({', '.join(BOARD_SUFFIXES)}; PDF squares are --square-mm "
                      "on paper at 100 %% scale)")
    p.add_argument("--board", default=f"{defaults.cols}x{defaults.rows}",
                   help=f"inner corners COLSxROWS (default {defaults.cols}x{defaults.rows}: a board of "
                   f"{defaults.cols + 1} x {defaults.rows + 1} squares)")
    p.add_argument("--square-mm", type=positive_number, default=defaults.square_mm,
                   help=f"side of one square in millimetres, as printed (default {defaults.square_mm:g})")
    p.add_argument("--out", help=f"calibration file to write ({', '.join(CALIBRATION_SUFFIXES)})")
    p.add_argument("--max-frames", type=count, default=0, help="read at most this many frames (0: all)")
    p.add_argument("--max-views", type=count, default=calibrator.max_views,
                   help=f"calibrate from at most this many views; a camera stops there "
                   f"(default {calibrator.max_views})")
    p.add_argument("--fast", action="store_true",
                   help="skip the slower, more robust board search on frames where the fast one fails")
    p.add_argument("--dpi", type=positive_number, default=300.0, help="PNG board resolution (default 300)")
    p.set_defaults(run=calibrate_command)
