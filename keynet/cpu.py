"""What the CPU (or GPU) inference runs on can do: the x86 CPU class from the flags and the libraries' instruction-set
limits in force, native bf16, oneDNN's int8 convolutions. ``keynet.inference`` chooses fast mode's route from it;
the benchmarks print it."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path

import torch

#: Where Linux lists the CPU's model and flags.
CPUINFO = Path("/proc/cpuinfo")

#: The /proc/cpuinfo flags that matter for inference speed, in ``cpu_features``' order.
SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpuinfo_field(name: str, cpuinfo: Path = CPUINFO) -> str | None:
    """The value of the first ``name : value`` line of ``cpuinfo`` (e.g. "flags", "model name"); None when the file
    or the field is absent (not Linux, not x86)."""
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return None


def cpu_features(cpuinfo: Path = CPUINFO) -> list[str]:
    """The vector and matrix extensions of ``SPEED_FLAGS`` the CPU has, from ``cpuinfo``'s flags (x86 Linux)."""
    flags = set((cpuinfo_field("flags", cpuinfo) or "").split())
    return [f for f in SPEED_FLAGS if f in flags]


#: The x86 CPU classes inference speed depends on, slowest first.
CPU_CLASSES = ("other", "avx2", "avx512", "avx512_bf16", "amx")

#: ``ATEN_CPU_CAPABILITY`` values and the class they limit ATen's kernels to (its ``avx512`` is its top level).
ATEN_CAPABILITY_CLASS = {"default": "other", "avx2": "avx2"}

#: ``NUMBA_CPU_NAME`` values (LLVM CPU names) and the class they limit numba's code to.
NUMBA_CPU_CLASS = {
    "haswell": "avx2", "broadwell": "avx2", "skylake": "avx2", "znver1": "avx2", "znver2": "avx2", "znver3": "avx2",
    "alderlake": "avx2", "skylake-avx512": "avx512", "cascadelake": "avx512", "icelake-server": "avx512",
    "cooperlake": "avx512_bf16", "znver4": "avx512_bf16", "sapphirerapids": "amx", "graniterapids": "amx",
}


def onednn_isa_class(isa: str) -> str | None:
    """The class a ``ONEDNN_MAX_CPU_ISA`` value (AVX2, AVX512_CORE, AVX512_CORE_BF16, AVX512_CORE_AMX, ...) limits
    oneDNN to; None for no limit (unset, ALL, DEFAULT)."""
    isa = isa.strip().upper()
    if isa in ("", "ALL", "DEFAULT"):
        return None
    if "AMX" in isa:
        return "amx"
    if isa.startswith("AVX10") or isa in ("AVX512_CORE_BF16", "AVX512_CORE_FP16"):
        return "avx512_bf16"
    if isa.startswith("AVX512"):
        return "avx512"
    if isa.startswith("AVX2"):
        return "avx2"
    return "other"


def hardware_cpu_class(cpuinfo: Path = CPUINFO) -> str:
    """The CPU's class from ``cpuinfo``'s flags alone: "amx", "avx512_bf16", "avx512", "avx2" or "other"."""
    features = set(cpu_features(cpuinfo))
    if {"amx_bf16", "amx_tile"} <= features:
        return "amx"
    for flag, name in (("avx512_bf16", "avx512_bf16"), ("avx512f", "avx512"), ("avx2", "avx2")):
        if flag in features:
            return name
    return "other"


def isa_limits(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The instruction-set limits set in ``environ`` (default ``os.environ``): variable name -> the class it allows."""
    env = os.environ if environ is None else environ
    limits = {}
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        limited = onednn_isa_class(env.get(name, ""))
        if limited is not None:
            limits[name] = limited
    aten = ATEN_CAPABILITY_CLASS.get(env.get("ATEN_CPU_CAPABILITY", "").strip().lower())
    if aten is not None:
        limits["ATEN_CPU_CAPABILITY"] = aten
    numba_cpu = NUMBA_CPU_CLASS.get(env.get("NUMBA_CPU_NAME", "").strip().lower())
    if numba_cpu is not None:
        limits["NUMBA_CPU_NAME"] = numba_cpu
    return limits


def cpu_class(environ: Mapping[str, str] | None = None, cpuinfo: Path = CPUINFO) -> str:
    """The class inference runs as here: the CPU's class (``hardware_cpu_class``), lowered to the tightest
    instruction-set limit in force (``isa_limits``; ``ONEDNN_MAX_CPU_ISA=AVX2`` gives "avx2" on any newer CPU)."""
    classes = [hardware_cpu_class(cpuinfo), *isa_limits(environ).values()]
    return min(classes, key=CPU_CLASSES.index)


@functools.cache
def native_bf16(device: torch.device) -> bool:
    """Whether bf16 convolutions are fast on ``device`` (CUDA with bf16, or a CPU with AMX or AVX-512 BF16)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    if any(CPU_CLASSES.index(c) < CPU_CLASSES.index("avx512_bf16") for c in isa_limits().values()):
        return False  # the libraries are limited below bf16 (``ONEDNN_MAX_CPU_ISA=AVX2``, ...)
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN's bf16 query
        return False


def int8_available() -> bool:
    """Whether this torch build has oneDNN's int8 convolution with fp32 output (the ops ``torch.compile`` uses)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.onednn.qconv2d_pointwise.default
                    and torch.ops.onednn.qconv_prepack.default)
    except (AttributeError, RuntimeError):
        return False
