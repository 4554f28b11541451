"""What machine a benchmark ran on, for the results files."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime

import torch


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (the platform's processor string elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_features() -> list[str]:
    """The vector and matrix extensions that matter for inference speed, from /proc/cpuinfo's flags."""
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [w for w in wanted if w in flags]
    except OSError:
        pass
    return []


def describe_machine(device: str = "cpu") -> dict:
    """CPU, cores, torch and (for CUDA) GPU of this run, and when it ran."""
    info = {
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_features": cpu_features(),
        "torch_threads": torch.get_num_threads(),
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
    return f"{info['cpu']} ({info['cpu_cores']} cores, {features}){gpu}, torch {info['torch']}, {info['date']}"
