"""Tests of robustbook.figures: every panel on an empty run store (paper + "not run in this
build" + a command that names real keys), and the FP&R panels on arrays of real smoke runs
trained and analysed here (seconds, CPU)."""

import dataclasses
import json
import re
import shutil

import numpy as np
import pytest

from robustbook import analysis, evaluate, figures, paper, presets, results, runs

PROFILE = "smoke"

pytestmark = pytest.mark.usefixtures("one_thread")


def _all_panels(profile=PROFILE):
    out = []
    for paper_key in figures.PANELS:
        out += figures.panels(paper_key, profile)
    for key in ("fpr_table2", "aelf_table3", "rlfat_table1b"):
        out.append(figures.attack_curves(key, profile))
    return out


def _check_command(cmd):
    """Every `python -m robustbook.<module> <key>` in a command names a real module and key."""
    found = re.findall(r"python -m robustbook\.(\w+) (\w+)", cmd)
    for module, key in found:
        if module == "figures":
            assert key in {n.figure for n in figures.NEEDS}, cmd
        elif module == "reproduce":
            assert key in presets.EXPERIMENTS, cmd
        else:
            raise AssertionError(f"unexpected module in {cmd!r}")
    return found


def test_empty_store_every_panel_falls_back_to_the_paper():
    panels = _all_panels()
    assert len({p.key for p in panels}) == len(panels)
    for p in panels:
        assert isinstance(p, figures.Panel)
        assert p.caption.strip()
        json.dumps([f.to_plotly_json() for f in p.figures], default=str)  # serialisable for the static book
        if p.key == "rlfat_figure1":
            continue  # drawn from the data set, not from runs
        assert not p.from_data and not p.runs, p.key
        assert figures.NOT_RUN in p.caption, p.key
        # commands render as whole code spans: the campaign hint comes after the span, not inside it
        assert not [span for span in re.findall(r"`([^`]*)`", p.caption) if "(or " in span], p.caption
        assert p.command, p.key
        if p.key != "aelf_figure5":  # no preset sweeps beta yet: the caption says so
            assert _check_command(p.command), p.command


def test_paper_tables_carry_the_papers_numbers():
    p = figures.fpr_table5(PROFILE)
    df = p.tables[0]
    d = paper.load("fpr_table5")
    col = d["columns"][0]
    for row, r in zip(df.to_dict("records"), d["rows"]):
        assert row["method"] == r.get("label", r["method"])
        assert row[f"{col} · paper"] == f"{r['values'][col]:.2f}"
    assert "CIFAR100" in p.caption or "not available offline" in p.caption or figures.NOT_RUN in p.caption
    t = figures.rlfat_table2(PROFILE).tables[0]
    want = paper.value("rlfat_table2a", "PGDAT", "CIFAR-10 brightness -0.15")
    assert t.loc[0, "CIFAR-10 brightness −0.15 · paper"] == f"{want:.2f}"
    assert (t["CIFAR-10 gamma 0.8 · ours"] == "—").all()


def test_lambda_slider_spans_the_presets_and_both_papers():
    p = figures.fpr_lambda(PROFILE)
    cfgs = [c for _, c in presets.get("fpr_table2").configs(PROFILE)]
    for fig, (method, name) in zip(p.figures, (("at_reg", "AT-reg"), ("at_att_reg", "AT-att-reg"))):
        lams = {float(c.lam) for c in cfgs if c.method == method}
        for key in ("fpr_table2", "fpr_ijcai_table2"):
            lams.add(float(paper.load(key)["setting"]["lambda"][name]))
        steps = fig.layout.sliders[0].steps
        assert sorted(float(s.label) for s in steps) == sorted(lams)
        for i, s in enumerate(steps):  # each step shows its own two traces and sets the title text
            vis = s.args[0]["visible"]
            assert vis[2 * i] and vis[2 * i + 1] and sum(vis) == 2
            assert name in s.args[1]["title.text"]
        conf_lam = paper.load("fpr_table2")["setting"]["lambda"][name]
        i = [float(s.label) for s in steps].index(float(conf_lam))
        paper_trace = fig.data[2 * i + 1]
        assert list(paper_trace.y) == [paper.value("fpr_table2", name, c) for c in paper_trace.x]


# --------------------------------------------------------------------------- on real smoke runs
@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """fpr_table4's three smoke runs (natural classifier, Madry, AT-att-reg) trained into a
    module store, the FP&R analyses computed by `figures.compute`, and Madry evaluated with
    a small suite."""
    root = tmp_path_factory.mktemp("runs")
    mp = pytest.MonkeyPatch()
    mp.setenv("ROBUSTBOOK_RUNS", str(root))
    for _, cfg in presets.get("fpr_table4").configs(PROFILE):
        runs.train(cfg, root=root, progress=False)
    done = figures.compute(["fpr_figure2", "fpr_figure3", "fpr_figure4", "fpr_table4"], PROFILE, root=root,
                           progress=False)
    # a light version of fpr_table2's suite for the smoke profile (the real one runs PGD-200)
    spec = results.TABLES["fpr_table2"]
    light = dataclasses.replace(spec, suite_changes={
        PROFILE: {"pgd_steps": (1, 2, 4), "cw_steps": (2,), "transfer": False, "n": 16, "large_eps": 0.5,
                  "check_n": 16, "skip_misclassified": False}})  # a 1-epoch model may get every image wrong
    mp.setitem(results.TABLES, "fpr_table2", light)
    madry = dict(presets.get("fpr_table2").configs(PROFILE))["Madry et al. (2017)"]
    result = evaluate.evaluate(runs.load_run(madry, root), light.suite_at(PROFILE), progress=False)
    yield {"root": root, "done": done, "result": result, "madry": madry}
    mp.undo()


def test_compute_stores_and_find_reads_back(store):
    root = store["root"]
    assert {f for f, _, what in store["done"] if what == "stored"} >= {"fpr_figure2", "fpr_figure3", "fpr_figure4",
                                                                       "fpr_table4"}
    again = figures.compute(["fpr_figure3"], PROFILE, root=root, progress=False)
    analysed = [what for _, _, what in again if not what.startswith("skipped")]  # AT-att is not trained here
    assert analysed and all(what == "cached" for what in analysed)
    need = [n for n in figures.NEEDS if n.figure == "fpr_figure4"][0]
    found = figures.find(need, PROFILE, root)
    assert [f.label for f in found] == list(need.rows) and all(f.exact for f in found)
    cfg = dict(presets.get("fpr_table4").configs(PROFILE))[need.rows[0]]
    direct = analysis.analyse(runs.load_run(cfg, root), "gradient_maps", **need.kwargs)
    assert np.array_equal(found[0].arrays["clipped"], direct["arrays"]["clipped"])


def test_compute_on_a_fresh_clone_loads_records_instead_of_retraining(store, tmp_path, monkeypatch):
    """Without weights (a fresh clone: records committed, model.pt not) `compute(train=True)`, as
    `make book PROFILE=smoke` calls it, finds the stored analyses current and trains nothing."""
    fresh = tmp_path / "clone"
    shutil.copytree(store["root"], fresh, ignore=shutil.ignore_patterns("*.pt", ".lock"))
    monkeypatch.setattr(runs, "train", lambda *a, **k: pytest.fail("retrained a run finished on record"))
    again = figures.compute(["fpr_figure4", "fpr_table4"], PROFILE, root=fresh, train=True, progress=False)
    assert again and all(what == "cached" for _, _, what in again)


def test_fpr_figures_drawn_from_the_stored_arrays(store):
    root = store["root"]
    p2 = figures.fpr_figure2(PROFILE, root)
    assert p2.from_data and figures.NOT_RUN not in p2.caption
    need = [n for n in figures.NEEDS if n.figure == "fpr_figure2"][0]
    found = figures.find(need, PROFILE, root)
    assert found and p2.runs == [f.run_id for f in found]
    lines = [t for t in p2.figures[0].data if t.type == "scatter"]
    assert len(lines) == 2 * len(found)  # train and test per run
    np.testing.assert_allclose(lines[0].y, found[0].arrays["curve_train"])
    np.testing.assert_allclose(lines[1].y, found[0].arrays["curve_test"])
    assert f"profile **{PROFILE}**" in p2.caption and found[0].run_id in p2.caption

    p3 = figures.fpr_figure3(PROFILE, root)
    n_img = len(figures.find([n for n in figures.NEEDS if n.figure == "fpr_figure3"][0], PROFILE, root)[0]
                .arrays["images"])
    assert p3.from_data and len(p3.figures[0].data) == 2 * n_img  # input row + one attention row

    p4 = figures.fpr_figure4(PROFILE, root)
    assert len(p4.figures) == 2 and len(p4.figures[0].data) == 3 * 8  # images, Madry, ours
    assert set(p4.runs) == {f.run_id for f in figures.find(
        [n for n in figures.NEEDS if n.figure == "fpr_figure4"][0], PROFILE, root)}


def test_fpr_table4_ours_from_the_stored_accuracy(store):
    root = store["root"]
    p = figures.fpr_table4(PROFILE, root)
    assert p.from_data
    need = [n for n in figures.NEEDS if n.figure == "fpr_table4"][0]
    found = figures.find(need, PROFILE, root)
    row = p.tables[0].iloc[0]
    acc = 100 * float(found[0].arrays["accuracy"][0][1])  # with clipping, test
    assert row["With clipping, Test data · ours"].startswith(f"{acc:.1f}")
    want = paper.value("fpr_table4", need.rows[0], "With clipping, Test data")
    assert row["With clipping, Test data · paper"] == f"{want:.2f}"


def test_attack_curves_follow_the_recorded_steps(store):
    p = figures.attack_curves("fpr_table2", PROFILE, store["root"])
    assert p.from_data and p.runs == [store["result"]["run_id"]]
    res = store["result"]["results"]
    fig = p.figures[0]
    white_pgd = [t for t in fig.data if t.visible in (True, None)]
    assert white_pgd
    steps = sorted(int(k.split("-")[1]) for k in res if re.fullmatch(r"pgd-\d+", k))
    assert list(white_pgd[0].x) == steps
    np.testing.assert_allclose(white_pgd[0].y, [100 * res[f"pgd-{s}"]["accuracy"] for s in steps])
    labels = [b.label for b in fig.layout.updatemenus[0].buttons]
    assert labels[0] == "white box, PGD"
    assert any("CW" in b for b in labels)
    for b in fig.layout.updatemenus[0].buttons:
        assert "title.text" in b.args[1]
    eps_fig = p.figures[1]  # clean (eps 0), and the large-eps check
    assert eps_fig.data[0].x[0] == 0 and eps_fig.data[0].y[0] == pytest.approx(100 * res["clean"]["accuracy"])


def test_rlfat_figure1_draws_rbs_on_real_images(real_cifar):
    p = figures.rlfat_figure1(n_images=2, draws=3)
    assert p.from_data and "transforms.rbs" in p.caption
    fig = p.figures[0]
    assert len(fig.data) == (1 + 2 * 2) * (1 + 3)  # painted + paper/official per image; original + draws
    first = np.asarray(fig.data[4].z)  # first image, original
    draws = [np.asarray(fig.data[4 + 1 + d].z) for d in range(3)]
    for d in draws:  # RBS moves pixels, never changes them
        assert sorted(d.reshape(-1, 3).tolist()) == sorted(first.reshape(-1, 3).tolist())
    assert any(not np.array_equal(d, first) for d in draws)


def test_aelf_figure3_draws_the_stored_shift_sweep(tmp_path):
    """Part (c): one subplot per row with a stored `shift_sweep`, a line per direction and fill
    (hover: per seed)."""
    need = [n for n in figures.NEEDS if n.figure == "aelf_figure3"][0]
    pixels = [0, 4, 8]
    for label, cfg in presets.get("aelf_table2").configs(PROFILE):
        if label not in ("ST", "AT"):
            continue
        acc = np.full((4, 3), 0.5 if label == "ST" else 0.3)
        analysis.store(runs.run_dir(cfg, tmp_path), analysis.analysis_name("shift_sweep"),
                       {"accuracy_zero": acc, "accuracy_wrap": acc + 0.2},
                       {"directions": ["left", "right", "up", "down"], "pixels": pixels, "fills": ["zero", "wrap"]})
    found = figures.find(need, PROFILE, tmp_path)
    assert [f.label for f in found] == ["ST", "AT"] and all(f.exact for f in found)
    panel = figures.aelf_figure3(PROFILE, tmp_path)
    fig = panel.figures[-1]
    assert len(fig.data) == 2 * 8 and "(c)" in panel.caption and found[0].run_id in panel.runs
    zero_left = next(t for t in fig.data if t.name == "left, zero")
    assert list(zero_left.x) == pixels and list(zero_left.y) == pytest.approx([50.0] * 3)
    assert "seeds 50.0" in zero_left.hovertext[0]
    assert next(t for t in fig.data if t.name == "up, wrap").line.dash == "dash"
    assert [a.text for a in fig.layout.annotations][:2] == ["ST", "AT"]
