"""Fast mode's routes: the int8 learned blocks keep exact mode's keypoints, bf16 only where it is native, and the
CPU class (from /proc/cpuinfo's flags, lowered by the libraries' instruction-set limits) that chooses between them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import keynet.inference as inference
from keynet.cpu import (
    cpu_class,
    cpu_features,
    cpuinfo_field,
    hardware_cpu_class,
    int8_available,
    isa_limits,
    native_bf16,
)
from keynet.demo import make_target
from keynet.detect import KeyNetDetector
from keynet.model import KeyNet, TinyKeyNet
from keynet.weights import default_weights, load_model

from .conftest import AUTHORS_WEIGHTS, TEST_IMAGE, require_shared

CPU = torch.device("cpu")

requires_int8 = pytest.mark.skipif(not int8_available(), reason="this torch build has no oneDNN int8 convolution")


def kept_within_one_pixel(model: KeyNet, image: np.ndarray) -> float:
    """The share of exact mode's top-1000 keypoints that fast mode finds within 1 px."""
    exact = KeyNetDetector(model, num_keypoints=1000, mode="exact").detect(image)[0]
    fast = KeyNetDetector(model, num_keypoints=1000, mode="fast").detect(image)[0]
    assert len(exact) == 1000
    return float((torch.cdist(exact.xy, fast.xy).min(1).values <= 1.0).float().mean())


@pytest.fixture
def int8_route(monkeypatch):
    """Fast mode takes the int8 route for Key.Net whatever the CPU (an AMX machine would take bf16)."""
    monkeypatch.setattr(inference, "fast_route", lambda model, device: "int8")


@requires_int8
def test_int8_route_keeps_95_percent_of_exact_keypoints_on_the_demo_target(int8_route):
    model = load_model(default_weights("keynet"))  # the shipped weights
    poster = make_target((640, 480))
    assert kept_within_one_pixel(model, poster) >= 0.95


@requires_int8
def test_int8_route_keeps_95_percent_of_exact_keypoints_on_the_authors_test_image(int8_route):
    model = load_model(require_shared(AUTHORS_WEIGHTS))
    image = cv2.imread(str(require_shared(TEST_IMAGE)))
    assert kept_within_one_pixel(model, image) >= 0.95


def test_fast_mode_never_chooses_bf16_without_native_bf16(monkeypatch):
    monkeypatch.setattr(inference, "native_bf16", lambda device: False)
    for model in (KeyNet().eval(), TinyKeyNet().eval()):
        assert inference.fast_route(model, CPU) in ("int8", "fp32")
    tiny = TinyKeyNet().eval()
    x = torch.rand(1, 1, 64, 80)
    fast = inference.response_function(tiny, "fast")(x)
    exact = inference.response_function(tiny, "exact")(x)
    inner = (slice(None), slice(None), slice(4, -4), slice(4, -4))  # the derivatives' border differs by design
    assert fast.dtype == torch.float32
    torch.testing.assert_close(fast[inner], exact[inner], rtol=1e-4, atol=1e-5)  # fp32: bf16 would be ~1e-2 off
    monkeypatch.setattr(inference, "native_bf16", lambda device: True)
    assert inference.fast_route(tiny, CPU) == "bf16"  # the switch this test turned off is the one fast mode reads


def test_int8_is_chosen_for_keynet_on_cpus_without_native_bf16(monkeypatch):
    monkeypatch.setattr(inference, "native_bf16", lambda device: False)
    monkeypatch.setattr(inference, "int8_available", lambda: True)
    assert inference.fast_route(KeyNet(), CPU) == "int8"
    assert inference.fast_route(TinyKeyNet(), CPU) == "fp32"  # no last convolution: the int8 blocks do not pay


@pytest.fixture
def fresh_native_bf16():
    native_bf16.cache_clear()
    yield
    native_bf16.cache_clear()


def test_native_bf16_is_false_below_the_bf16_classes(monkeypatch, fresh_native_bf16):
    if cpu_class() in ("other", "avx2", "avx512"):
        assert native_bf16(CPU) is False  # this CPU, as it is
    native_bf16.cache_clear()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert native_bf16(CPU) is False  # any CPU limited to AVX2


def cpuinfo(tmp_path: Path, flags: str) -> Path:
    """A two-processor /proc/cpuinfo with ``flags``."""
    path = tmp_path / "cpuinfo"
    block = f"processor\t: {{}}\nmodel name\t: Test CPU @ 3.00GHz\nflags\t\t: fpu sse2 {flags}\n\n"
    path.write_text(block.format(0) + block.format(1))
    return path


@pytest.mark.parametrize(("flags", "expected"), [
    ("", "other"),
    ("avx avx2 fma", "avx2"),
    ("avx2 avx512f avx512bw", "avx512"),
    ("avx2 avx512f avx512_bf16", "avx512_bf16"),
    ("avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8", "amx"),
    ("avx2 amx_tile", "avx2"),  # AMX tiles without bf16 tiles are not the amx class
])
def test_cpu_class_comes_from_the_cpuinfo_flags(tmp_path, flags, expected):
    path = cpuinfo(tmp_path, flags)
    assert hardware_cpu_class(path) == expected
    assert cpu_class({}, path) == expected
    assert set(cpu_features(path)) <= set(flags.split())
    assert cpuinfo_field("model name", path) == "Test CPU @ 3.00GHz"


def test_a_missing_cpuinfo_is_the_other_class(tmp_path):
    assert cpu_features(tmp_path / "absent") == [] and cpu_class({}, tmp_path / "absent") == "other"
    assert cpuinfo_field("flags", tmp_path / "absent") is None


@pytest.mark.parametrize(("environ", "expected"), [
    ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, "avx2"),
    ({"DNNL_MAX_CPU_ISA": "avx512_core"}, "avx512"),
    ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, "avx512_bf16"),
    ({"ONEDNN_MAX_CPU_ISA": "ALL"}, "amx"),
    ({"ATEN_CPU_CAPABILITY": "avx2"}, "avx2"),
    ({"ATEN_CPU_CAPABILITY": "default"}, "other"),
    ({"NUMBA_CPU_NAME": "haswell"}, "avx2"),
    ({"NUMBA_CPU_NAME": "skylake-avx512"}, "avx512"),
    ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE", "NUMBA_CPU_NAME": "haswell"}, "avx2"),  # the tightest limit wins
])
def test_instruction_set_limits_lower_the_class(tmp_path, environ, expected):
    assert cpu_class(environ, cpuinfo(tmp_path, "avx2 avx512f avx512_bf16 amx_bf16 amx_tile")) == expected


def test_a_limit_above_the_cpu_does_not_raise_its_class(tmp_path):
    environ = {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX", "NUMBA_CPU_NAME": "sapphirerapids"}
    assert isa_limits(environ) == {"ONEDNN_MAX_CPU_ISA": "amx", "NUMBA_CPU_NAME": "amx"}
    assert cpu_class(environ, cpuinfo(tmp_path, "avx2")) == "avx2"


def test_the_process_environment_is_read_when_none_is_given(tmp_path, monkeypatch):
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "NUMBA_CPU_NAME"):
        monkeypatch.delenv(name, raising=False)
    path = cpuinfo(tmp_path, "avx2 avx512f")
    assert cpu_class(cpuinfo=path) == "avx512"
    monkeypatch.setenv("NUMBA_CPU_NAME", "haswell")
    assert cpu_class(cpuinfo=path) == "avx2"
