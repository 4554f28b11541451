"""The detector benchmark end to end on a tiny generated set, and a detector that finds nothing."""

from __future__ import annotations

import numpy as np

from bench import detectors as bench

from .test_datasets import make_sequence


def test_a_detector_with_no_points_scores_zero_and_a_good_one_scores_high(tmp_path):
    make_sequence(tmp_path / "v_shift", size=(160, 200))
    grid = np.array([[x, y, 11.0, 1.0] for y in range(30, 130, 12) for x in range(30, 160, 12)], float)

    def shifted_grid(image):  # knows the 2 px shift per view: every point repeats
        k = int(round(bench_state["calls"] % 3))
        bench_state["calls"] += 1
        return grid + [2.0 * k, 0, 0, 0]

    bench_state = {"calls": 0}
    result = bench.run(tmp_path, {"none": lambda image: np.zeros((0, 4)), "grid": shifted_grid})
    none = result["detectors"]["none"]["by_kind"]["viewpoint"]
    assert none["repeatability_sl"] == 0 and none["matching_score"] == 0
    grid_scores = result["detectors"]["grid"]["by_kind"]["viewpoint"]
    assert grid_scores["repeatability_sl"] == 100.0 and grid_scores["repeatability_l"] == 100.0
    assert "| grid |" in bench.markdown(result, "test")


def test_missing_data_folder_exits_with_a_message(tmp_path, capsys):
    assert bench.main(["--data", str(tmp_path / "nothing")]) == 2
    assert "not found" in capsys.readouterr().err
