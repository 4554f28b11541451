"""What machine a benchmark ran on, for the results files."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime

import torch

from keynet.cpu import cpu_class, cpu_features, cpuinfo_field, isa_limits

__all__ = ["cpu_class", "cpu_features", "cpu_model", "describe_machine", "isa_limits", "machine_line"]


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
