"""The training-throughput benchmark runs the trainer's step and reports it beside the paper's anchor; bf16 is
measured only where it is native."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import bench.training as bench
import trainer.train as train
from bench.training import PAPER_PAIRS_PER_SECOND, SKIPPED_BF16, markdown, run


@pytest.fixture
def photo_folder(tmp_path):
    rng = np.random.default_rng(0)
    blobs = rng.uniform(0, 255, (40, 50, 3)).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "p.png"), cv2.resize(blobs, (250, 200), interpolation=cv2.INTER_CUBIC))
    return tmp_path


@pytest.mark.parametrize("native", [True, False])
def test_the_training_benchmark_reports_every_configuration(photo_folder, monkeypatch, native):
    for module in (bench, train):  # the benchmark's choice and the trainer's own fallback
        monkeypatch.setattr(module, "native_bf16", lambda device: native)
    result = run([str(photo_folder)], "cpu", batch_size=4, crop=64, steps=1, warmup=0)
    assert round(PAPER_PAIRS_PER_SECOND) == 56  # 45 epochs x 9,000 pairs in 2 hours
    bf16 = "bf16 autocast" if native else SKIPPED_BF16
    assert {(r["model"], r["precision"]) for r in result["rows"]} == {
        (m, p) for m in ("keynet", "tiny_keynet") for p in ("fp32", bf16)}
    for r in result["rows"]:
        if r["precision"] == SKIPPED_BF16:
            assert r["steps"] == 0 and "pairs_per_s" not in r
        else:
            assert r["pairs_per_s"] > 0 and abs(r["x_paper_gtx1080ti"] * 56.25 - r["pairs_per_s"]) < 1e-6
    expected = "| keynet | bf16 autocast | 4 (64 px) |" if native else f"| keynet | {SKIPPED_BF16} | 4 (64 px) | – | – | – |"
    assert expected in markdown(result)
