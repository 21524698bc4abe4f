"""robustbook.results: tables collected from a (synthetic) run store, and claim verdicts."""

import json

import pytest
from conftest import fake_entry

from robustbook import evaluate, paper, presets, results, runs


def _fake_store(root, key, profile, acc, epochs_done=None, seeds=None, seconds=10.0):
    """Write config.json, metrics.jsonl and the suite's eval file for every run of `key`;
    acc(label, seed, result_key) -> accuracy in [0, 1] (None: leave the run untrained)."""
    spec = results.get(key)
    suite = spec.suite_at(profile)
    for label, cfg in presets.get(key).configs(profile, seeds):
        folder = runs.run_dir(cfg, root)
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps(cfg.to_dict()))
        done = cfg.epochs if epochs_done is None else epochs_done
        (folder / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e + 1, "seconds": seconds}) + "\n"
                                                      for e in range(done)))
        if done < cfg.epochs:
            continue
        entries = {rk: fake_entry(rk, acc(label, cfg.seed, rk), suite.eps) for rk in spec.columns.values()}
        if label == "AT-reg":  # fails the large-eps check: doubt on every white-box row
            entries["check/large-eps"] = fake_entry("pgd-20", 0.3, 8 / 255, role="check")
        res = {"results": entries, "checks": [], "doubts": {}, "seconds_total": 1.0}
        path = evaluate.result_path(runs.Run(cfg=cfg, dir=folder, model=None), suite)
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(res))


BASE = {"Madry et al. (2017)": 0.40, "AT-reg": 0.42, "AT-att": 0.44, "AT-att-reg": 0.46,
        "AT-reg (IJCAI λ = 1)": 0.41, "AT-att-reg (IJCAI λ = 0.1)": 0.45}


def test_collect_aggregates_seeds_and_keeps_evidence(tmp_path):
    _fake_store(tmp_path, "fpr_table2", "smoke", lambda lab, s, rk: BASE[lab] + 0.01 * s, seeds=[0, 1, 2])
    t = results.collect("fpr_table2", "smoke", seeds=[0, 1, 2], root=tmp_path)
    assert t["rows"] == list(BASE) and t["complete"]
    cell = t["cells"]["AT-att"]["White box, PGD 20 steps"]
    assert cell["seeds"] == {"0": 44.0, "1": 45.0, "2": 46.0} and cell["n"] == 3
    assert cell["mean"] == pytest.approx(45.0) and cell["std"] == pytest.approx(1.0)
    assert cell["paper"] == paper.value("fpr_table2", "AT-att", "White box, PGD 20 steps") == 41.39
    # doubts are judged from the stored flags (evaluate.rejudged), not copied from the record
    assert t["cells"]["AT-reg"]["White box, PGD 5 steps"]["doubts"] == ["large_eps"]
    assert t["cells"]["AT-reg"]["Natural"]["doubts"] == t["cells"]["AT-att"]["White box, PGD 5 steps"]["doubts"] == []
    # check rows (evidence, not table columns) are collected per row, named for what they are
    check = t["check_cells"]["PGD-20 at eps 8/255 alone"]
    assert check["AT-reg"]["seeds"] == {"0": 30.0, "1": 30.0, "2": 30.0} and check["AT-reg"]["n"] == 3
    assert check["AT-att"]["n"] == 0 and results.fmt_cell(check["AT-att"]) == "—"
    assert all(r["state"] == "evaluated" and r["eval_file"] for r in t["runs"])
    assert t["deviations"] == presets.get("fpr_table2").deviations("smoke") and t["suite"]["name"] == "fpr_cifar"
    # the claims of this table come from the ledger, judged on these runs (statistics: test_stats)
    assert t["claims"] and all(c["id"] and c["text"] and c["line"] for c in t["claims"])
    judged = [c for c in t["claims"] if c["testable"] != "no"]
    assert judged and all(c["verdict"] not in ("no runs yet",) for c in judged if c["comparisons"]
                          and all(comp["n"] for comp in c["comparisons"]))
    # stored and loaded as data
    path = results.store(t, tmp_path / "results")
    assert path.name == "fpr_table2-smoke.json" and results.load("fpr_table2", "smoke", tmp_path / "results") == t
    text = path.read_text()
    results.store({**t, "created": "later", "git_commit": "other"}, tmp_path / "results")
    assert path.read_text() == text  # same numbers: the file is left alone
    results.store({**t, "complete": False}, tmp_path / "results")
    assert results.load("fpr_table2", "smoke", tmp_path / "results")["complete"] is False
    df = results.frame(t)
    assert df.loc["AT-att", ("White box, PGD 20 steps", "smoke")] == "45.0 ± 1.0 (3)"
    assert df.loc["AT-reg", ("White box, PGD 5 steps", "smoke")].endswith("⚠")
    assert len(results.claims_frame(t)) == len(t["claims"])


def test_unfinished_and_missing_runs_are_listed_not_counted(tmp_path):
    _fake_store(tmp_path, "fpr_table2", "smoke", lambda *a: 0.5, epochs_done=0, seeds=[0])
    t = results.collect("fpr_table2", "smoke", seeds=[0, 1], root=tmp_path)
    states = {(r["label"], r["seed"]): r["state"] for r in t["runs"]}
    assert states[("AT-reg", 0)] == "training" and states[("AT-reg", 1)] == "missing"
    assert not t["complete"]
    assert all(c["n"] == 0 and c["mean"] is None for row in t["cells"].values() for c in row.values())
    assert {c["verdict"] for c in t["claims"] if c["testable"] != "no"} == {"no runs yet"}
    assert results.fmt_cell(t["cells"]["AT-reg"]["Natural"]) == "—"


def test_every_table_maps_paper_columns_and_rows():
    for key, spec in results.TABLES.items():
        pap = paper.load(key if key != "fpr_table2_bf16" else "fpr_table2")
        assert set(spec.columns) <= set(pap["columns"]), key
        keys = set(spec.columns.values())
        suite = evaluate.get_suite(spec.suite)
        if any(k.startswith("transfer/") for k in keys):
            assert suite.transfer
        if suite.transfer:
            # every trained copy is a row and a transfer source: seed s attacked from the next seed
            exp = presets.get(key)
            sources = sorted(exp.transfer_seed("cpu", s) for s in exp.seeds("cpu"))
            assert sources == exp.seeds("cpu"), key


def test_rlfat_cpu_suite_cuts_nattack_and_says_so():
    spec = results.get("rlfat_table1b")
    assert spec.suite_at("paper").nattack_n == 1500 and spec.suite_at("cpu").nattack_n == 25
    assert spec.suite_at("cpu").hash != spec.suite_at("paper").hash
    assert spec.suite_deviations("cpu") == ["evaluation nattack_n: paper 1500 -> cpu 25"]


def test_aelf_mnist_cpu_suite_stops_when_fooled_and_says_so():
    for key in ("aelf_table2", "aelf_table6"):
        spec = results.get(key)
        assert not spec.suite_at("paper").stop_when_fooled and spec.suite_at("cpu").stop_when_fooled
        assert spec.suite_deviations("cpu") == ["evaluation stop_when_fooled: paper False -> cpu True"]


def test_pattern_columns_pick_the_table_row():
    res = {"pgd-7": {"accuracy": 0.3, "role": "table"}, "pgd-14": {"accuracy": 0.2, "role": "check"},
           "cw-7": {"accuracy": 0.25, "role": "table"}}
    assert results._entry(res, "pgd-*")["accuracy"] == 0.3 and results._entry(res, "cw-*")["accuracy"] == 0.25
    assert results._entry(res, "nattack") is None
    with pytest.raises(ValueError, match="several"):
        results._entry({**res, "pgd-9": {"accuracy": 0.1, "role": "table"}}, "pgd-*")


def test_unknown_table_is_a_clear_error():
    with pytest.raises(ValueError, match="no results table"):
        results.get("fpr_table99")


def test_report_renders_a_collected_table(tmp_path):
    pytest.importorskip("plotly")
    from robustbook import report

    _fake_store(tmp_path, "fpr_table2", "smoke", lambda lab, s, rk: BASE[lab] + 0.01 * s, seeds=[0, 1])
    t = results.collect("fpr_table2", "smoke", seeds=[0, 1], root=tmp_path)
    head = report.results_header(t)
    assert "profile **smoke**" in head and "not the paper's setting" in head and "12 of 12 runs" in head
    fig = report.results_figure(t)
    assert len(fig.data) == 2 * len(t["columns"]) and sum(bool(tr.visible) for tr in fig.data) == 2
    bars = fig.data[0]
    assert list(bars.y) == pytest.approx([40.5, 42.5, 44.5, 46.5, 41.5, 45.5]) and list(fig.data[1].y)[0] == 80.79
    claims = report.claims_table(t)
    assert len(claims) == len(t["claims"]) and claims["verdict"].str.len().min() > 0
    assert list(report.runs_table(t)["state"].unique()) == ["evaluated"]


def test_ijcai_lambda_rows_show_the_ijcai_texts_numbers():
    """FP&R Table 2's '(IJCAI λ = ...)' rows compare with the IJCAI text's Table 2 (the column
    names differ: 'White, PGD 20' there), the conference rows with the conference table."""
    from robustbook import results

    assert results._paper_value("fpr_table2", "AT-att-reg (IJCAI λ = 0.1)", "Natural") == 81.2
    assert results._paper_value("fpr_table2", "AT-att-reg", "Natural") == 81.21
    assert results._paper_value("fpr_table2", "AT-att-reg (IJCAI λ = 0.1)", "White box, PGD 20 steps") == 45.2
    assert results._paper_value("fpr_table2", "AT-reg (IJCAI λ = 1)", "Black box, CW 100 steps") == 56.79
    assert results._paper_value("fpr_table2", "AT-reg (IJCAI λ = 1)", "no such column") is None


def _bf16_store(root, move):
    """FP&R Table 2 (fp32, seed spread 1 point) and its bf16 twins moved by move(label, result key)."""
    seeds = [0, 1, 2]
    _fake_store(root, "fpr_table2", "smoke", lambda lab, s, rk: BASE[lab] + 0.01 * s, seeds=seeds)
    _fake_store(root, "fpr_table2_bf16", "smoke", lambda lab, s, rk: BASE[lab.split(", bf16")[0]] + 0.01 * s
                + move(lab, rk), seeds=seeds, seconds=5.0)
    return {key: results.collect(key, "smoke", seeds=seeds, root=root) for key in ("fpr_table2", "fpr_table2_bf16")}


def test_bf16_gate_passes_when_every_cell_moves_less_than_the_seed_spread(tmp_path):
    tables = _bf16_store(tmp_path, lambda lab, rk: 0.005)
    check = results.precision_check("smoke", tables=tables)
    n_cols = len(tables["fpr_table2"]["columns"])
    assert check["verdict"] == "pass" and not check["failing"] and len(check["cells"]) == 2 * n_cols
    cell = check["cells"][0]
    assert (cell["twin"], cell["row"]) == ("Madry et al. (2017), bf16", "Madry et al. (2017)")
    assert cell["move"] == pytest.approx(0.5) and cell["spread"] == pytest.approx(1.0)
    assert cell["paired"]["n"] == 3 and cell["paired"]["mean"] == pytest.approx(0.5)
    assert cell["p_pass_if_equal"] == pytest.approx(0.6547, abs=1e-4)
    assert check["expected_failing_if_equal"] == pytest.approx(2 * n_cols * (1 - 0.6547), abs=1e-2)
    assert [t["speedup"] for t in check["twins"]] == pytest.approx([2.0, 2.0])
    swap = check["swap_test"]
    assert swap["patterns"] == 2 ** 6 and swap["observed"] == 0 and swap["p"] == 1.0
    assert sum(swap["distribution"].values()) == 64
    from robustbook import report
    html = report.precision_check_html(check)
    assert "Verdict: pass" in html and "2.00x faster" in html and "p = 1.00" in html


def test_bf16_gate_fails_on_one_cell_and_waits_for_seeds(tmp_path):
    moved = "White box, CW 30 steps"
    rkey = results.get("fpr_table2").columns[moved]
    tables = _bf16_store(tmp_path, lambda lab, rk: 0.015 if (lab == "AT-reg, bf16" and rk == rkey) else 0.0)
    check = results.precision_check("smoke", tables=tables)
    assert check["verdict"] == "fail"
    assert [(c["row"], c["column"]) for c in check["failing"]] == [("AT-reg", moved)]
    assert check["failing"][0]["move"] == pytest.approx(1.5)
    assert check["swap_test"]["observed"] == 1 and 0 < check["swap_test"]["p"] < 1
    # one bf16 seed: nothing can be judged yet (a single seed has no spread to compare with)
    one = {**tables, "fpr_table2_bf16": results.collect("fpr_table2_bf16", "smoke", seeds=[0], root=tmp_path)}
    check = results.precision_check("smoke", tables=one)
    assert check["verdict"] == "incomplete" and check["missing"] == len(check["cells"]) and check["judged"] == 0


def test_swap_test_by_hand():
    """One cell, two seeds, bf16 10 points up: of the 4 swap patterns, the two that keep each
    arm whole fail and the two that mix them do not, so p = P(count >= 1) = 1/2."""
    cell = {"twin": "t", "fp32": {"seeds": {"0": 0.0, "1": 2.0}}, "bf16": {"seeds": {"0": 10.0, "1": 12.0}}}
    swap = results._swap_test([cell])
    assert swap == {"twins": ["t"], "cells": 1, "units": 2, "patterns": 4, "observed": 1, "p": 0.5,
                    "distribution": {0: 2, 1: 2}}
    assert results._swap_test([{**cell, "bf16": {"seeds": {"0": 10.0}}}]) is None  # one paired seed
    # a twin not ready yet is left out, the ready one is tested
    late = {**cell, "twin": "u", "bf16": {"seeds": {"0": 10.0}}}
    assert results._swap_test([cell, late])["twins"] == ["t"]


def test_a_small_spread_never_reads_as_zero():
    from robustbook import report

    assert results.fmt_mean_spread(98.94, 0.0471) == "98.9 ± 0.05"
    assert results.fmt_mean_spread(40.8, 1.04) == "40.8 ± 1.0" and results.fmt_mean_spread(40.8, 0.05) == "40.8 ± 0.1"
    assert results.fmt_mean_spread(40.8, 0.0) == "40.8 ± 0.0" and results.fmt_mean_spread(40.8, None) == "40.8"
    assert results.fmt_mean_spread(0.1234, 0.0004, digits=3) == "0.123 ± 0.0004"
    cell = {"n": 3, "mean": 98.94, "std": 0.0471, "doubts": []}
    assert results.fmt_cell(cell) == "98.9 ± 0.05 (3)" and report.fmt_ours(cell) == "98.9 ± 0.05"
    assert report.fmt_ours({**cell, "n": 1, "std": None}) == "98.9"


def test_check_rows_are_named_for_what_they_are():
    table_keys = {"clean", "pgd-40"}
    res = {"clean": fake_entry("clean", 0.99, 0.3, n=1000), "pgd-40": fake_entry("pgd-40", 0.9, 0.3, n=1000),
           "pgd-5": fake_entry("pgd-5", 0.95, 0.3, role="check", n=1000),
           "pgd-100-nostart": fake_entry("pgd-100", 0.8, 0.3, role="check", n=500),
           "check/large-eps": fake_entry("pgd-20", 0.0, 0.6, role="check", n=500),
           "shift-up/pgd-5": fake_entry("pgd-5", 0.5, 0.3, role="check", n=1000)}
    res["pgd-100-nostart"]["evidence"]["random_start"] = False
    res["pgd-16-nostart"] = {**fake_entry("pgd-16", 0.9, 0.3, n=1000), "role": "table"}
    res["pgd-16-nostart"]["evidence"]["random_start"] = False
    table_keys.add("pgd-16-nostart")
    checks = results.check_entries(res, table_keys)
    # a check on the first 500 images follows the table's longest attack of its family on those 500
    assert list(checks) == ["PGD-5", "PGD-16, no random start (first 500 images)",
                            "PGD-100, no random start (first 500 images)", "PGD-20 at eps 0.6 alone (first 500 images)"]
    assert checks["PGD-16, no random start (first 500 images)"]["n"] == 500
    assert checks["PGD-16, no random start (first 500 images)"]["accuracy"] == 1.0  # the first 900 of 1000 are right
    res["check/large-eps"] = fake_entry("pgd-20", 0.0, 64 / 255, role="check", n=500)
    assert "PGD-20 at eps 64/255 alone (first 500 images)" in results.check_entries(res, table_keys)


def test_checks_html_shows_every_row_and_check(tmp_path):
    from robustbook import report

    _fake_store(tmp_path, "fpr_table2", "smoke", lambda lab, s, rk: BASE[lab] + 0.01 * s, seeds=[0, 1])
    t = results.collect("fpr_table2", "smoke", seeds=[0, 1], root=tmp_path)
    html = report.checks_html(t)
    assert "check rows, ours only" in html and "PGD-20 at eps 8/255 alone" in html
    assert all(report._esc(r) in html for r in t["rows"]) and "30.0 ± 0.0" in html
    assert report.checks_html({**t, "check_cells": {}}) == ""
