"""What machine a benchmark ran on, for the results files."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import torch

from keynet.cpu import cpu_class, cpu_features, cpuinfo_field, isa_limits

__all__ = ["ISA_LIMITS", "cpu_class", "cpu_features", "cpu_model", "describe_machine", "isa_limits", "machine_line",
           "run_limited"]

REPO = Path(__file__).resolve().parent.parent
# A benchmark's ``--isa CLASS``: each library limited to the class's instructions, so any newer x86 CPU measures it.
ISA_LIMITS = {"avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "NUMBA_CPU_NAME": "haswell"}}


def without_isa(argv: list[str]) -> list[str]:
    """``argv`` without its ``--isa VALUE`` / ``--isa=VALUE`` options."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--isa":
            skip = True
        elif not arg.startswith("--isa="):
            out.append(arg)
    return out


def run_limited(module: str, isa: str, argv: list[str]) -> int:
    """Run ``python -m module`` with ``argv`` (its ``--isa`` left out) in a child process whose libraries are
    limited to ``isa`` (``ISA_LIMITS``); returns its exit code."""
    env = {**os.environ, **ISA_LIMITS[isa]}
    return subprocess.run([sys.executable, "-m", module, *without_isa(argv)], cwd=REPO, env=env).returncode


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (the platform's processor string elsewhere)."""
    return cpuinfo_field("model name") or platform.processor() or platform.machine()


def describe_machine(device: str = "cpu") -> dict:
    """CPU, cores, CPU class (with the limits that set it), torch (threads, OpenMP wait policy) and (for CUDA) GPU of
    this run, and when it ran."""
    info = {
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_features": cpu_features(),
        "cpu_class": cpu_class(),
        "isa_limits": isa_limits(),
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def machine_line(info: dict) -> str:
    """One Markdown line naming the machine."""
    gpu = f", GPU {info['gpu']}" if "gpu" in info else ""
    features = "/".join(info.get("cpu_features", [])) or "no AVX2"
    limits = info.get("isa_limits") or {}
    limited = f", limited by {', '.join(limits)}" if limits else ""
    cls = f", class {info['cpu_class']}{limited}" if "cpu_class" in info else ""
    return f"{info['cpu']} ({info['cpu_cores']} cores, {features}{cls}){gpu}, torch {info['torch']}, {info['date']}"
