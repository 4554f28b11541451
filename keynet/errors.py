"""The project's errors: one base, ``KeyNetError``, with one kind per place a problem comes from.

Every message is one line that names the input and what was expected; the command line prints it as
``error: <message>`` (exit code 2) and the app shows it in its status bar. Each kind also derives from the
built-in exception it refines (``ValueError`` for bad values, ``OSError`` for files and sources), so callers that
catch those keep working.
"""

from __future__ import annotations


class KeyNetError(Exception):
    """An expected failure with a one-line message naming the input and what was expected."""


class InputError(KeyNetError, ValueError):
    """A bad value: an image, an option, a region, a target, a number out of range."""


class OptionError(InputError):
    """An unknown option name, or an option value of the wrong kind."""


class DeviceError(InputError):
    """A device that is unknown or absent here (``cuda`` without CUDA, ``cuda:3`` on a one-GPU machine)."""


class WeightsError(KeyNetError, ValueError):
    """A weights file that cannot be used; the message names the file and the problem."""


class SourceError(KeyNetError, OSError):
    """A frame source (camera, video, image folder) that cannot be opened or fails while read."""


class OutputError(KeyNetError, OSError):
    """An output (image, video, JSON, checkpoint) that cannot be written where it was asked for."""


def check_options(given: object, known: object, what: str) -> None:
    """Raise ``OptionError`` naming the unknown keys of ``given`` (an iterable of names) among ``known``.

    ``what`` names the options' owner in the message, e.g. ``"detector"`` -> "unknown detector option(s) ...".
    """
    unknown = sorted(set(given) - set(known))  # type: ignore[call-overload]
    if unknown:
        raise OptionError(f"unknown {what} option(s) {unknown}; known: {sorted(known)}")  # type: ignore[call-overload]


def check_share(name: str, value: float, zero_allowed: bool = True) -> None:
    """Raise ``OptionError`` naming ``name`` unless ``value`` is in [0, 1] (in (0, 1] without ``zero_allowed``)."""
    if not (0 <= value <= 1 if zero_allowed else 0 < value <= 1):
        raise OptionError(f"{name} must be in {'[0, 1]' if zero_allowed else '(0, 1]'}; got {value}")
