"""The printed chessboard of camera calibration: its specification (inner corners, square size) and the board
itself, as an image or a file to print (PNG at a given dpi, or a PDF whose squares are ``square_mm`` on paper)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .files import atomic_path

MIN_CORNERS = 3
BOARD_SUFFIXES = (".png", ".pdf")
_MM_PER_INCH = 25.4


@dataclass(frozen=True)
class ChessboardSpec:
    """A chessboard of ``cols`` x ``rows`` inner corners (so ``cols + 1`` x ``rows + 1`` squares), each square
    ``square_mm`` wide. One count even and the other odd makes the board look different turned by 180 degrees, so
    its corners are always found in the same order.

    Raises:
        InputError: fewer than 3 inner corners along a side, or a square size that is not a positive number.
    """

    cols: int = 9
    rows: int = 6
    square_mm: float = 25.0

    @classmethod
    def parse(cls, text: str, square_mm: float = 25.0) -> ChessboardSpec:
        """``"9x6"`` (inner corners, columns x rows) with ``square_mm``.

        Raises:
            InputError: anything but two whole numbers joined by ``x``.
        """
        try:
            cols, rows = (int(v) for v in text.lower().split("x"))
        except ValueError:
            raise InputError(f"chessboard {text!r}: expected COLSxROWS, the inner corners (9x6 for a board of "
                             "10 x 7 squares)") from None
        return cls(cols, rows, square_mm)

    def __post_init__(self) -> None:
        if min(self.cols, self.rows) < MIN_CORNERS:
            raise InputError(f"chessboard {self.cols}x{self.rows}: needs at least {MIN_CORNERS} inner corners "
                             "along each side (a board of 10 x 7 squares has 9x6 inner corners)")
        if not (math.isfinite(self.square_mm) and self.square_mm > 0):
            raise InputError(f"chessboard square size must be a positive number of millimetres; got {self.square_mm}")

    @property
    def pattern_size(self) -> tuple[int, int]:
        """``(cols, rows)``, OpenCV's ``patternSize``."""
        return self.cols, self.rows

    @property
    def corner_count(self) -> int:
        return self.cols * self.rows

    def object_points(self) -> np.ndarray:
        """(cols * rows, 3) float32 the inner corners on the z = 0 plane in millimetres, row by row (OpenCV's
        corner order)."""
        grid = np.mgrid[0:self.cols, 0:self.rows].T.reshape(-1, 2) * self.square_mm
        return np.hstack([grid, np.zeros((len(grid), 1))]).astype(np.float32)

    def to_dict(self) -> dict[str, float]:
        return {"cols": self.cols, "rows": self.rows, "square_mm": self.square_mm}

    def __str__(self) -> str:
        return f"{self.cols}x{self.rows} chessboard ({self.square_mm:g} mm squares)"


def chessboard_image(spec: ChessboardSpec, square_px: int = 80, margin_px: int | None = None) -> np.ndarray:
    """(H, W) uint8 the board: ``(rows + 1) x (cols + 1)`` squares of ``square_px``, the top-left one black, in a
    white margin of ``margin_px`` (default one square; the detector needs white around the board).

    The inner corner (i, j) lies at pixel ``(margin + (i + 1) * square_px - 0.5, margin + (j + 1) * square_px - 0.5)``
    (pixel centres at whole coordinates).
    """
    if square_px < 4:
        raise InputError(f"chessboard squares need at least 4 pixels; got {square_px}")
    margin = square_px if margin_px is None else margin_px
    if margin < 0:
        raise InputError(f"chessboard margin must be >= 0 pixels; got {margin}")
    squares_x, squares_y = spec.cols + 1, spec.rows + 1
    checker = (np.add.outer(np.arange(squares_y), np.arange(squares_x)) % 2 * 255).astype(np.uint8)
    board = np.kron(checker, np.ones((square_px, square_px), np.uint8))
    return np.pad(board, margin, constant_values=255)


def _board_pdf(spec: ChessboardSpec, path: Path, margin_mm: float) -> None:
    """Write the board as vector squares on a page of exactly the board's size plus ``margin_mm`` each side."""
    from matplotlib.backends.backend_pdf import FigureCanvasPdf
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    width_mm = (spec.cols + 1) * spec.square_mm + 2 * margin_mm
    height_mm = (spec.rows + 1) * spec.square_mm + 2 * margin_mm
    figure = Figure(figsize=(width_mm / _MM_PER_INCH, height_mm / _MM_PER_INCH))
    FigureCanvasPdf(figure)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_xlim(0, width_mm)
    axes.set_ylim(height_mm, 0)
    axes.set_axis_off()
    for j in range(spec.rows + 1):
        for i in range(spec.cols + 1):
            if (i + j) % 2 == 0:
                axes.add_patch(Rectangle((margin_mm + i * spec.square_mm, margin_mm + j * spec.square_mm),
                                         spec.square_mm, spec.square_mm, facecolor="black", edgecolor="none"))
    axes.text(margin_mm, height_mm - margin_mm / 3, f"{spec} - print at 100 % (no fit to page)", fontsize=7,
              color="0.4", va="center")
    figure.savefig(path, format="pdf")


def save_chessboard(spec: ChessboardSpec, path: str | Path, dpi: float = 300.0) -> Path:
    """Write the board for printing: a ``.pdf`` with squares of exactly ``spec.square_mm`` on paper (print at
    100 %), or a ``.png`` at ``dpi`` (squares of ``square_mm / 25.4 * dpi`` pixels; the dpi is recorded in the
    file), both with a white margin of one square. Returns the path.

    Raises:
        InputError: another suffix, or a dpi that gives squares under 4 pixels. OutputError: the file cannot be
            written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in BOARD_SUFFIXES:
        raise InputError(f"chessboard file {path}: expected a {' or '.join(BOARD_SUFFIXES)} file name")
    with atomic_path(path) as tmp:
        if suffix == ".pdf":
            _board_pdf(spec, tmp, margin_mm=spec.square_mm)
        else:
            square_px = round(spec.square_mm / _MM_PER_INCH * dpi)
            if square_px < 4:
                raise InputError(f"a board at {dpi:g} dpi has squares of {square_px} pixels; it needs 4 or more")
            from PIL import Image

            Image.fromarray(chessboard_image(spec, square_px)).save(tmp, format="PNG", dpi=(dpi, dpi))
    return path
