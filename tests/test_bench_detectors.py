"""The detector benchmark end to end on a tiny generated set, a detector that finds nothing, and bad input.

bench.detectors is the command line; bench.adapters, bench.protocol, bench.paper and bench.report hold the work."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench import adapters, paper, protocol, report
from bench import detectors as bench
from bench.readme import replace_section
from keynet.weights import load_checkpoint, load_model

from .conftest import DATA, require_shared
from .test_datasets import make_sequence

GRID = np.array([[x, y, 11.0, 1.0] for y in range(30, 130, 24) for x in range(30, 160, 24)], float)


def shifting_grid(views: int = 3):
    """A detector that knows each view's 2 px shift (make_sequence): every point repeats exactly."""
    calls = {"n": 0}

    def detect(image):
        k = calls["n"] % views
        calls["n"] += 1
        return GRID + [2.0 * k, 0, 0, 0]

    return detect


def jittered_grid(views: int = 3):
    """Like shifting_grid, but image k's points are 17 px from any right one: none repeats (IoU of 30 px circles
    17 px apart is 0.48 < 0.6)."""
    exact = shifting_grid(views)
    calls = {"n": 0}

    def detect(image):
        points = exact(image)
        calls["n"] += 1
        return points if (calls["n"] - 1) % views == 0 else points + [12.0, 12.0, 0, 0]

    return detect


@pytest.fixture
def shifted_set(tmp_path):
    make_sequence(tmp_path / "v_shift", size=(160, 200))
    return tmp_path


def test_a_detector_with_no_points_scores_zero_and_a_good_one_scores_high(shifted_set):
    result = protocol.run(shifted_set, {"none": lambda image: np.zeros((0, 4)), "grid": shifting_grid()})
    none = result["detectors"]["none"]["by_kind"]["viewpoint"]
    assert none["repeatability_sl"] == 0 and none["matching_score"] == 0
    assert none["homography_accuracy"]["5px"] == 0
    grid = result["detectors"]["grid"]["by_kind"]["viewpoint"]
    assert grid["repeatability_sl"] == 100.0 and grid["repeatability_l"] == 100.0
    assert grid["overlap_error_sl"] == pytest.approx(0.0, abs=1e-9) and grid["scale_range"] == 1.0
    assert "| grid |" in report.markdown(result, "test")


def test_the_ranking_check_compares_keynet_with_its_peers_and_the_paper(shifted_set):
    detectors = {"Key.Net-SI (authors)": shifting_grid(), "SIFT": jittered_grid(), "ORB": jittered_grid()}
    result = protocol.run(shifted_set, detectors)
    assert result["detectors"]["SIFT"]["by_kind"]["viewpoint"]["repeatability_l"] == 0.0
    lines = paper.ranking(result)
    assert any(line.startswith("- viewpoint, SI, Rep L: Key.Net-SI (authors) 100.0, rank 1/3") for line in lines)
    assert any("vs SIFT +100.0 ± 0.0 (ahead; paper +17.2)" in line for line in lines)
    text = report.markdown(result, "test")
    assert "| Key.Net-SI (authors) | 100.0 / 100.0 | 60.5 / 73.2 |" in text  # beside the paper's Table 2


def test_agreement_counts_points_within_a_pixel_at_the_same_scale():
    a = np.array([[10.0, 10, 11, 1], [50, 50, 11, 1]])
    assert protocol.agreement(a, a) == 100.0
    assert protocol.agreement(a, a + [0.5, 0.5, 0, 0]) == 100.0  # 0.71 px away
    assert protocol.agreement(a, a + [[0, 0, 0, 0], [2, 0, 0, 0]]) == 50.0
    assert protocol.agreement(a, a * [1, 1, 1.5, 1]) == 0.0  # right place, wrong scale
    assert protocol.agreement(np.zeros((0, 4)), a) == 0.0


def test_the_readme_section_is_rendered_from_results(shifted_set, tmp_path):
    result = protocol.run(shifted_set, {"Key.Net-SI (authors)": shifting_grid()})
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- detectors:begin -->\nold\n<!-- detectors:end -->\nafter\n", encoding="utf-8")
    replace_section("detectors", report.readme_section({"hpatches": result}), readme)
    text = readme.read_text(encoding="utf-8")
    assert "old" not in text and text.endswith("<!-- detectors:end -->\nafter\n")
    assert "| Key.Net-SI (authors) | 100.0 / 100.0 | 100.0 |" in text
    assert "| *paper's Table 2: Key.Net-SI, full HPatches* | 60.5 / 73.2 | – |" in text


def test_missing_data_folder_exits_with_a_message(tmp_path, capsys):
    assert bench.main(["--data", str(tmp_path / "nothing")]) == 2
    assert "not found" in capsys.readouterr().err


def test_a_missing_homography_exits_with_the_file_named(tmp_path, capsys, monkeypatch):
    folder = make_sequence(tmp_path / "v_x")
    (folder / "H_1_3").unlink()
    monkeypatch.setattr(bench, "build_detectors", lambda mode: {"none": lambda image: np.zeros((0, 4))})
    assert bench.main(["--data", str(tmp_path)]) == 2
    assert "H_1_3 is missing" in capsys.readouterr().err


@pytest.mark.slow
def test_our_keynet_and_kornias_agree_on_a_real_sequence(authors_weights):
    folder = require_shared(DATA / "hpatches" / "v_wormhole")
    detectors = {adapters.AUTHORS: adapters.keynet_detector(load_model(authors_weights), True, "exact"),
                 adapters.KORNIA: adapters.kornia_detector(load_checkpoint(authors_weights)["state_dict"])}
    result = protocol.run(folder, detectors)
    assert result["kornia_agreement"]["mean_percent"] > 90
    ours, kornia = (result["detectors"][n]["by_kind"]["viewpoint"] for n in (adapters.AUTHORS, adapters.KORNIA))
    assert ours["repeatability_sl"] == pytest.approx(kornia["repeatability_sl"], abs=3)
    assert ours["repeatability_l"] == pytest.approx(kornia["repeatability_l"], abs=3)
    assert ours["scale_range"] == pytest.approx(kornia["scale_range"], rel=0.01)


def test_render_only_renders_the_saved_results(shifted_set, tmp_path, monkeypatch):
    result = protocol.run(shifted_set, {"grid": shifting_grid()})
    results = tmp_path / "results"
    results.mkdir()
    (results / "detectors-oxford.json").write_text(json.dumps(result), encoding="utf-8")
    readme = tmp_path / "README.md"
    readme.write_text("<!-- detectors:begin -->\n<!-- detectors:end -->\n", encoding="utf-8")
    monkeypatch.setattr(bench, "RESULTS", results)
    monkeypatch.setattr(bench, "replace_section", lambda name, text: replace_section(name, text, readme))
    assert bench.main(["--render-only"]) == 0
    assert (results / "detectors-oxford.md").is_file() and (results / "detectors-oxford.png").stat().st_size > 0
    assert "**oxford** (1 sequences" in readme.read_text(encoding="utf-8")
    assert "| grid | 100.0 / 100.0 | 100.0 |" in readme.read_text(encoding="utf-8")


def test_random_points_fill_the_image_and_repeat_by_seed():
    image = np.zeros((60, 80), np.uint8)
    a, b = adapters.random_detector(3)(image), adapters.random_detector(3)(image)
    assert np.array_equal(a, b) and a.shape == (adapters.CANDIDATES, 4)
    assert a[:, 0].min() >= 0 and a[:, 0].max() <= 79 and a[:, 1].max() <= 59
    assert np.all(np.diff(a[:, 3]) < 0)  # best first
