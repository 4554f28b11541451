"""`python -m bench.speed --quick --json` prints one JSON object with the 640x480 CPU figures."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import REPO


def test_quick_json_prints_the_three_times():
    result = subprocess.run([sys.executable, "-m", "bench.speed", "--quick", "--json"], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    for key in ("kornia_ms", "exact_ms", "fast_ms"):
        assert figures[key] > 0
    assert figures["size"] == "640x480" and figures["device"] == "cpu"


@pytest.mark.parametrize("module", ["bench.speed", "bench.tracking"])
def test_isa_avx2_runs_the_benchmark_in_a_child_limited_to_avx2(module, monkeypatch, tmp_path):
    import importlib

    import bench.machine as machine
    from keynet.cpu import cpu_class

    bench_module = importlib.import_module(module)

    calls = []

    def fake_run(args, cwd, env):
        calls.append((args, cwd, env))
        return subprocess.CompletedProcess(args, 0)

    monkeypatch.setattr(machine.subprocess, "run", fake_run)
    options = ["--quick", "--json"] if module == "bench.speed" else ["--max-frames", "4"]
    for argv in (["--isa", "avx2", *options], [*options, "--isa=avx2"]):
        try:
            assert bench_module.main(argv) == 0
        except SystemExit as exit_:  # bench.tracking exits with the child's code
            assert exit_.code == 0
    for args, cwd, env in calls:
        assert args == [sys.executable, "-m", module, *options]  # the same run, without --isa
        assert cwd == REPO
        assert env["ONEDNN_MAX_CPU_ISA"] == "AVX2" and env["ATEN_CPU_CAPABILITY"] == "avx2"
        assert env["NUMBA_CPU_NAME"] == "haswell"
        amx = tmp_path / "cpuinfo"
        amx.write_text("flags\t\t: avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n")
        assert cpu_class(env, amx) == "avx2"  # the child reports itself as AVX2 even on an AMX CPU
