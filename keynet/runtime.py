"""Process-wide settings that real-time entry points (the app, the command line, the benchmarks, the trainer)
choose for themselves: the library never applies them on import. This module imports neither torch nor NumPy,
so ``prefer_sleeping_threads`` can run before torch loads (``import keynet`` loads nothing heavy by itself).
"""

from __future__ import annotations

import ctypes
import os
import sys


def prefer_sleeping_threads() -> bool:
    """Make torch's OpenMP threads sleep while they wait for work instead of spinning (``OMP_WAIT_POLICY=PASSIVE``).

    OpenMP reads the policy when torch loads, so call this before importing torch; a policy set by the user is
    kept. Spinning threads hold the cores that the capture and UI threads, and any other process, need; an
    OpenMP thread that then loses its core stalls every parallel region (``bench/app_fps.py`` measures both
    policies). Returns whether the policy in force is passive.
    """
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed blocks instead of returning them to the system.

    Eager inference allocates and frees the same large activations every frame; by default glibc returns blocks
    over 32 MB (and the heap top) to the kernel, and every frame then pays page faults on fresh memory. Returns
    False off glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, 1 << 30))
