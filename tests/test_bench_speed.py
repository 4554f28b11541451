"""`python -m bench.speed --quick --json` prints one JSON object with the 640x480 CPU figures."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import REPO


def test_quick_json_prints_the_three_times():
    result = subprocess.run([sys.executable, "-m", "bench.speed", "--quick", "--json"], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    for key in ("kornia_ms", "exact_ms", "fast_ms"):
        assert figures[key] > 0
    assert figures["size"] == "640x480" and figures["device"] == "cpu"
