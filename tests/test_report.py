"""What the book shows: readable tables and figures (report.py), one parameters cell (book.py)."""

import json
import math

import pytest

from robustbook import book, presets, report

TABLE = {
    "key": "fpr_table2", "profile": "cpu", "paper": "FP&R", "table": "Table 2", "title": "t",
    "rows": ["Madry et al. (2017)", "AT-reg", "AT-reg (IJCAI λ = 1)"],
    "columns": ["Natural", "White box, PGD 5 steps", "White box, PGD 20 steps", "Black box, PGD 5 steps",
                "Black box, PGD 20 steps"],
    "cells": {},
    "claims": [{"text": "A claim that is a good deal longer than fifty characters, so it must not be cut short.",
                "verdict": "no runs", "comparisons": []}],
    "runs": [{"label": "AT-reg", "seed": 0, "run_id": "at_reg-x", "state": "missing", "epochs_done": 0,
              "epochs": 15, "train_seconds": 0.0, "config": "/abs/machine/path/data/runs/at_reg-x/config.json"}],
}
for r, row in enumerate(TABLE["rows"]):
    TABLE["cells"][row] = {}
    for c, col in enumerate(TABLE["columns"]):
        if r == 0:
            cell = {"seeds": {"0": 22.6}, "runs": {"0": "run-a"}, "n": 1, "mean": 22.6, "std": None}
        elif r == 1:
            cell = {"seeds": {"0": 40.0, "1": 41.0}, "runs": {"0": "b0", "1": "b1"}, "n": 2, "mean": 40.5,
                    "std": 0.71}
        else:
            cell = {"seeds": {}, "runs": {}, "n": 0, "mean": None, "std": None}
        cell.update(doubts=[], paper=None if r == 2 else 47.04 - c)
        TABLE["cells"][row][col] = cell


def test_fmt_number_precision_and_missing():
    assert report.fmt_number(274.41312) == "274"
    assert report.fmt_number(51.78622) == "51.8"
    assert report.fmt_number(1.574957) == "1.57"
    assert report.fmt_number(0.330354) == "0.33"
    assert report.fmt_number(float("nan")) == report.MISSING
    assert report.fmt_number(None) == report.MISSING
    assert report.fmt_number(12) == "12"


def test_paths_are_never_absolute(monkeypatch):
    assert report.display_path(report.data_mod.REPO_ROOT / "data" / "runs" / "x" / "config.json") == \
        "data/runs/x/config.json"
    assert not report.display_path("/elsewhere/entirely/config.json").startswith("/")
    assert report.strip_paths("images (/work/shared/data/cifar10_4k1k.npz)") == "images (cifar10_4k1k.npz)"


def test_results_html_is_readable():
    html = report.results_html(TABLE)
    assert html.count("<table") == 2  # white box and black box apart, each with the method column
    assert "NaN" not in html and "None" not in html and "± 0.0" not in html
    assert "22.6" in html and "40.5 ± 0.7" in html and "47.04" in html
    groups = report.column_groups(TABLE["columns"])
    assert [g for g, _ in groups] == ["White box", "Black box"] and groups[0][1][0] == "Natural"
    claims = report.claims_html(TABLE)
    assert TABLE["claims"][0]["text"] in claims and "…" not in claims


def test_frames_drop_index_and_nan():
    import pandas as pd

    html = report.frame_html(pd.DataFrame({"a": [1.23456, float("nan")], "b": [None, "x"]}))
    assert "NaN" not in html and "None" not in html and "1.23" in html and ">0<" not in html
    runs = report.frame_html(report.runs_table(TABLE))
    assert "/abs/machine" not in runs


def test_figures_keep_titles_and_single_seed_hover():
    fig = report.results_figure(TABLE)
    assert fig.layout.title.text == "FP&R Table 2: Natural"
    button = fig.layout.updatemenus[0].buttons[1]
    assert button.args[1] == {"title.text": "FP&R Table 2: White box, PGD 5 steps"}
    hover = " ".join(fig.data[0].hovertext)
    assert "22.6 (1 seed)" in hover and "±" not in fig.data[0].hovertext[0] and "{" not in hover
    steps = report.steps_figure(TABLE)
    assert [s.label for s in steps.layout.sliders[0].steps] == ["5", "20"]
    assert all(s.args[1]["title.text"].startswith("FP&R Table 2") for s in steps.layout.sliders[0].steps)


def test_tweak_config_rescales_milestones_and_keeps_eps_range(tmp_path, monkeypatch):
    exp = presets.get("fpr_table2")
    base = dict(exp.configs("paper", seeds=[0]))[exp.runs[0][0]]
    cfg = report.tweak_config(base, eps=4 / 255, epochs=max(2, base.epochs // 2), seed=3)
    assert cfg.milestones == presets.rescale(base, cfg.epochs).milestones
    assert math.isclose(cfg.alpha / cfg.eps, base.alpha / base.eps) and cfg.seed == 3
    lo, hi, _, scale = report.EPS_RANGE["mnist"]
    assert hi / scale >= 0.3  # MNIST's 0.3 is not clamped
    assert report.EPS_RANGE["cifar10"][1] / report.EPS_RANGE["cifar10"][3] == pytest.approx(16 / 255)
    monkeypatch.setenv("ROBUSTBOOK_SCRATCH", str(tmp_path))
    assert report.scratch_root() == tmp_path
    monkeypatch.delenv("ROBUSTBOOK_SCRATCH")
    assert "data/runs" not in str(report.scratch_root())


def test_parameters_cell_shown_once(tmp_path):
    import nbformat

    def make(injected):
        nb = nbformat.v4.new_notebook()
        orig = nbformat.v4.new_code_cell('profile = "stored"  # comment')
        orig.metadata["tags"] = ["parameters"]
        inj = nbformat.v4.new_code_cell(f"# Parameters\nprofile = {json.dumps(injected)}\n")
        inj.metadata["tags"] = ["injected-parameters"]
        nb.cells = [orig, inj]
        path = tmp_path / f"{injected}.ipynb"
        nbformat.write(nb, str(path))
        book.show_parameters_once(path)
        return [("remove-cell" in c.metadata.get("tags", [])) for c in nbformat.read(str(path), as_version=4).cells]

    assert make("stored") == [False, True]  # same value: the commented original stays
    assert make("cpu") == [True, False]  # overridden: the injected cell is the one shown
