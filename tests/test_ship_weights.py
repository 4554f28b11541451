"""Shipping weights: figures pooled by pairs, issue 5's bar, and results of other weights refused."""

from __future__ import annotations

import pytest

import tools.ship_weights as ship
from keynet.model import build_model
from keynet.weights import save_weights


def kind(pairs, sl, lenient):
    return {"pairs": pairs, "repeatability_sl": sl, "repeatability_l": lenient}


def result(ours: dict, authors: dict, digest: str = "") -> dict:
    return {"machine": {"date": "today"}, "settings": {"weights_digests": {"keynet": digest}},
            "detectors": {"Key.Net-SI (ours)": {"by_kind": ours}, ship.AUTHORS: {"by_kind": authors}}}


RESULTS = {
    "hpatches": result({"viewpoint": kind(10, 60.0, 70.0)}, {"viewpoint": kind(10, 61.0, 70.0)}),
    "oxford": result({"viewpoint": kind(30, 40.0, 66.0), "illumination": kind(5, 80.0, 82.0)},
                     {"viewpoint": kind(30, 40.0, 67.0), "illumination": kind(5, 78.0, 80.0)}),
}


def test_pooled_figures_are_means_weighted_by_pairs():
    pooled = ship.pooled(RESULTS, "Key.Net-SI (ours)", ("hpatches", "oxford"))
    assert pooled["viewpoint"] == kind(40, 45.0, 67.0)  # (10*60 + 30*40) / 40, (10*70 + 30*66) / 40
    assert pooled["illumination"] == kind(5, 80.0, 82.0)


def test_the_issue_bar_needs_every_figure_within_one_point_and_the_mean_at_least_the_authors():
    card = ship.benchmark_card(RESULTS, "Key.Net", "keynet")
    diffs = card["issue_bar"]["differences"]
    assert diffs == {"viewpoint SL": -0.25, "viewpoint L": -0.75, "illumination SL": 2.0, "illumination L": 2.0}
    assert card["issue_bar"]["met"]
    worse = dict(RESULTS, hpatches=result({"viewpoint": kind(10, 60.0, 70.0)}, {"viewpoint": kind(10, 70.0, 70.0)}))
    assert not ship.benchmark_card(worse, "Key.Net", "keynet")["issue_bar"]["met"]  # viewpoint SL -2.75


def test_results_of_other_weights_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(ship, "WEIGHTS", tmp_path)
    monkeypatch.setattr(ship, "saved_results", lambda: {"hpatches": result({}, {}, digest="0" * 64)})
    save_weights(build_model("keynet"), tmp_path / "keynet.pt", {"data": "d", "epochs": 1, "date": "today"})
    with pytest.raises(ValueError, match="was not computed with"):
        ship.add_results()
