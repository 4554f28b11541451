"""The training-throughput benchmark runs the trainer's step and reports it beside the paper's anchor."""

from __future__ import annotations

import cv2
import numpy as np

from bench.training import PAPER_PAIRS_PER_SECOND, markdown, run


def test_the_training_benchmark_reports_every_configuration(tmp_path):
    rng = np.random.default_rng(0)
    blobs = rng.uniform(0, 255, (40, 50, 3)).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "p.png"), cv2.resize(blobs, (250, 200), interpolation=cv2.INTER_CUBIC))
    result = run([str(tmp_path)], "cpu", batch_size=4, crop=64, steps=1, warmup=0)
    assert round(PAPER_PAIRS_PER_SECOND) == 56  # 45 epochs x 9,000 pairs in 2 hours
    assert {(r["model"], r["precision"]) for r in result["rows"]} == {
        (m, p) for m in ("keynet", "tiny_keynet") for p in ("fp32", "bf16 autocast")}
    for r in result["rows"]:
        assert r["pairs_per_s"] > 0 and abs(r["x_paper_gtx1080ti"] * 56.25 - r["pairs_per_s"]) < 1e-6
    assert "| keynet | bf16 autocast | 4 (64 px) |" in markdown(result)
