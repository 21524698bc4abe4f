"""The cpu campaign runner (issue 10) on the smoke profile: plan, run, resume, status."""

import json

import pytest

from robustbook import campaign, presets, runs


def test_plan_orders_training_before_the_evaluations_that_need_it():
    steps = campaign.plan(("fpr_table2", "fpr_table4"), "cpu")
    pos = {}
    for i, s in enumerate(steps):
        pos.setdefault((s.kind, s.key, s.cfg.run_id), i)
    exp = presets.get("fpr_table2")
    for s in steps:
        if s.kind != "evaluate":
            continue
        trained_at = [i for (k, _, rid), i in pos.items() if k == "train" and rid == s.cfg.run_id]
        assert trained_at and trained_at[0] < pos[(s.kind, s.key, s.cfg.run_id)]
        if s.key == "fpr_table2":  # transfer source: seed (s+1) mod 3, trained before
            assert s.source.seed == (s.cfg.seed + 1) % 3 == exp.transfer_seed("cpu", s.cfg.seed)
            assert [i for (k, _, rid), i in pos.items() if k == "train" and rid == s.source.run_id][0] < \
                pos[(s.kind, s.key, s.cfg.run_id)]
    # shared runs are trained once: Table 4's Madry row is Table 2's
    train_ids = [s.cfg.run_id for s in steps if s.kind == "train"]
    assert len(train_ids) == len(set(train_ids))
    madry = dict(presets.get("fpr_table4").configs("cpu", seeds=[0]))["Madry et al. (2017)"]
    assert madry.run_id == dict(exp.configs("cpu", seeds=[0]))["Madry et al. (2017)"].run_id
    # Table 4 analyses the runs it shares with Table 2 (gradient maps with the natural classifier)
    t4 = [s for s in steps if s.key == "fpr_table4" and s.kind == "evaluate" and s.cfg.run_id == madry.run_id]
    assert t4 and {n for n, _ in t4[0].analyses} == {"gradient_maps", "gradient_map_accuracy"}
    # a step survives the trip through its JSON form (the subprocess protocol)
    back = campaign.Step.from_json(t4[0].to_json())
    assert back.cfg == t4[0].cfg and back.analyses[1][1]["classifier"] == t4[0].analyses[1][1]["classifier"]


def test_rows_are_closed_so_a_stopped_machine_loses_at_most_one_row():
    """Row-major plan: a row's steps are contiguous and every evaluation needs only runs trained
    earlier in its own row or in earlier tables (weights die with the machine)."""
    steps = campaign.plan(("fpr_table2", "fpr_table4"), "cpu")
    rows = [campaign._row(s) for s in steps]
    seen, prev = set(), None
    for r in rows:
        assert r == prev or r not in seen, f"row {r} is interrupted by another row"
        seen.add(r)
        prev = r
    trained_in = {s.cfg.run_id: campaign._row(s) for s in steps if s.kind == "train"}
    for s in steps:
        if s.key == "fpr_table2" and s.kind == "evaluate":
            assert {trained_in[c.run_id] for c in campaign.needs(s)} == {campaign._row(s)}


def test_row_order_trains_each_method_after_its_baseline_and_names_real_rows():
    for key, first in campaign.ROW_ORDER.items():
        labels = list(dict.fromkeys(label for label, _ in presets.get(key).runs))
        assert set(first) <= set(labels), f"{key}: ROW_ORDER names rows the preset does not have"
    trained = list(dict.fromkeys(s.label for s in campaign.plan(("rlfat_table1b",), "cpu") if s.kind == "train"))
    assert trained[:4] == ["PGDAT", "RLFAT_P", "TRADES", "RLFAT_T"] and len(trained) == 6


def _touch_weights(cfg):
    folder = runs.run_dir(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.pt").write_bytes(b"")


def test_costs_count_retraining_of_weights_that_are_not_here():
    steps = campaign.plan(("fpr_table2",), "cpu")
    costs = campaign.Costs(steps)  # no records: the default speeds and the 30% evaluation budget
    ev = next(s for s in steps if s.kind == "evaluate")
    run_s, source_s = costs.train(ev.cfg), costs.train(ev.source)
    assert run_s > 600 and costs.eval_ratio == 0.3
    eval_s = costs.steps([ev], {ev.cfg.run_id, ev.source.run_id})
    assert eval_s >= 0.3 * run_s
    assert costs.steps([ev], set()) == pytest.approx(eval_s + run_s + source_s)  # both retrained first
    assert costs.steps([ev], {ev.cfg.run_id}) == pytest.approx(eval_s + source_s)
    # standard and adversarial training of one model are measured apart, the model's rate is the fallback
    natural = ev.cfg.replace(method="st")
    assert campaign._family(natural) == campaign._family(ev.cfg)
    assert campaign._family(natural, by_method=True) != campaign._family(ev.cfg, by_method=True)
    costs.rate = {campaign._family(ev.cfg): 300.0, campaign._family(ev.cfg, by_method=True): 300.0}
    assert costs.passes_per_second(natural) == 300.0
    costs.rate[campaign._family(natural, by_method=True)] = 150.0
    assert costs.passes_per_second(natural) == 150.0 and costs.passes_per_second(ev.cfg) == 300.0


def test_an_evaluation_is_estimated_at_its_suites_measured_cost_not_its_runs_training():
    """A suite attacks the same images whatever the training: a natural MNIST run trained in 273 s
    took 550 s to evaluate, an adversarial one trains 6x longer for about the same evaluation."""
    steps = campaign.plan(("fpr_table2", "fpr_table3", "aelf_table2"), "cpu")
    evals = [s for s in steps if s.kind == "evaluate"]
    st = next(s for s in evals if s.key == "aelf_table2" and s.cfg.method == "st")
    at = next(s for s in evals if s.key == "aelf_table2" and s.cfg.method == "pgd_at")
    narrow = next(s for s in evals if s.key == "fpr_table2")
    wide = next(s for s in evals if s.key == "fpr_table3")
    assert campaign._suite_family(st) == campaign._suite_family(at)
    assert campaign._suite_family(narrow) != campaign._suite_family(wide)  # a 3x wide model: its own cost
    costs = campaign.Costs(steps, scale=2.0)
    costs.eval_seconds = {campaign._suite_family(st): 550.0}
    assert costs.evaluation(st) == costs.evaluation(at) == 1100.0  # this machine's speed scales it
    assert costs.train(at.cfg) > 2 * costs.train(st.cfg)
    assert costs.evaluation(wide) == pytest.approx(costs.train(wide.cfg) * costs.eval_ratio)  # none measured


def _write_epochs(cfg, seconds):
    folder = runs.run_dir(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e + 1, "seconds": s}) + "\n"
                                                  for e, s in enumerate(seconds)))


def test_costs_use_the_typical_epoch_not_epochs_slowed_by_other_work():
    steps = campaign.plan(("fpr_table2",), "cpu")
    madry0, madry1 = steps[0].cfg, steps[1].cfg
    assert madry0.epochs == 15
    _write_epochs(madry0, [600.0, 400.0] + [140.0] * 13)  # two epochs shared the cores with tests
    costs = campaign.Costs(steps)
    assert costs.runs[madry0.run_id]["seconds"] == 1000.0 + 13 * 140.0  # what was spent
    assert costs.train(madry0) == pytest.approx(15 * 140.0)  # what retraining it costs
    assert costs.passes_per_second(madry1) == pytest.approx(campaign._passes(madry1) / (15 * 140.0))
    # a run under way: the share of its epochs still to do, when its checkpoint is here to resume
    _write_epochs(madry1, [150.0] * 5)
    costs = campaign.Costs(steps)
    assert costs.train_left(madry1) == pytest.approx(costs.train(madry1))  # no checkpoint: from the start
    (runs.run_dir(madry1) / "checkpoint.pt").write_bytes(b"")
    assert costs.train_left(madry1) == pytest.approx(costs.train(madry1) * 10 / 15)
    # this machine's measured speed scales every estimate
    slow = campaign.Costs(steps, scale=2.0)
    assert slow.train(madry0) == pytest.approx(2 * costs.train(madry0))
    assert slow.steps(steps[:3], set()) == pytest.approx(2 * costs.steps(steps[:3], set()))


def test_a_model_with_no_finished_run_is_estimated_at_the_share_of_the_bench_rate_others_reached():
    steps = campaign.plan(("fpr_table2", "fpr_table4", "aelf_table3"), "cpu")
    madry = next(s.cfg for s in steps if s.kind == "train" and s.cfg.method == "pgd_at")
    natural = next(s.cfg for s in steps if s.kind == "train" and s.cfg.method == "st" and s.cfg.model == "madry_resnet")
    cnn_b_st = next(s.cfg for s in steps if s.kind == "train" and s.cfg.model == "cnn_b" and s.cfg.method == "st")
    cnn_b_at = next(s.cfg for s in steps if s.kind == "train" and s.cfg.model == "cnn_b" and s.cfg.method == "pgd_at")
    bare = campaign.Costs(steps)  # nothing measured: the bench's rate
    assert bare.passes_per_second(cnn_b_st) == campaign._bench_rate(cnn_b_st)
    # an adversarial run at half its bench rate: until a standard run finishes, other models' runs
    # of either kind are estimated at half theirs
    _write_epochs(madry, [campaign._passes(madry) / madry.epochs / (0.5 * campaign._bench_rate(madry))] * madry.epochs)
    costs = campaign.Costs(steps)
    assert costs.passes_per_second(cnn_b_at) == pytest.approx(0.5 * campaign._bench_rate(cnn_b_at), rel=1e-3)
    assert costs.passes_per_second(cnn_b_st) == pytest.approx(0.5 * campaign._bench_rate(cnn_b_st), rel=1e-3)
    # a standard run at a quarter (its probes weigh more on its few passes): standard runs of
    # other models follow it, adversarial ones keep the adversarial share
    _write_epochs(natural, [campaign._passes(natural) / natural.epochs / (0.25 * campaign._bench_rate(natural))]
                  * natural.epochs)
    costs = campaign.Costs(steps)
    assert costs.passes_per_second(cnn_b_st) == pytest.approx(0.25 * campaign._bench_rate(cnn_b_st), rel=1e-3)
    assert costs.passes_per_second(cnn_b_at) == pytest.approx(0.5 * campaign._bench_rate(cnn_b_at), rel=1e-3)
    assert costs.train(cnn_b_st) == pytest.approx(campaign._passes(cnn_b_st) / (0.25 * campaign._bench_rate(cnn_b_st)), rel=1e-3)
    # a bf16 twin of the measured Madry run is not priced at the fp32 run's rate: the share times
    # the bench's bf16 rate (1.6x its fp32 one for the narrow ResNet)
    madry_bf16 = madry.replace(precision="bf16")
    assert campaign._family(madry_bf16) != campaign._family(madry)
    assert campaign._bench_rate(madry_bf16) == pytest.approx(116.5 / 71.8 * campaign._bench_rate(madry))
    assert costs.passes_per_second(madry_bf16) == pytest.approx(0.5 * campaign._bench_rate(madry_bf16), rel=1e-3)


def test_recent_speed_is_read_from_the_newest_logged_estimates(tmp_path):
    log = tmp_path / "log.jsonl"
    assert campaign.recent_speed(log) is None
    rows = [{"seconds": 3000.0, "estimated_seconds": 1500.0},  # an older, slower host
            {"seconds": 100.0},  # logged before estimates were
            {"seconds": 9.0, "failed": True, "estimated_seconds": 900.0},
            {"seconds": 1000.0, "estimated_seconds": 2000.0}, {"seconds": 600.0, "estimated_seconds": 1200.0}]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert campaign.recent_speed(log, min_estimate_s=3000) == 0.5  # the newest two steps suffice
    assert campaign.recent_speed(log) == round(4600 / 4700, 2)  # an hour needs the older host's step too
    assert campaign.recent_speed(log, min_estimate_s=10_000) is None


def test_speed_is_measured_once_steps_add_up():
    speed = campaign._Speed()
    assert speed.scale == 1.0
    speed.add(100.0, 10.0)  # a short step: mostly overhead, not a measurement yet
    assert speed.scale == 1.0
    speed.add(1900.0, 990.0)
    assert speed.scale == pytest.approx(1000.0 / 2000.0)
    speed.add(1e5, 1.0)
    assert speed.scale == 0.25  # bounded


def test_pick_goes_row_by_row_within_the_time_left():
    steps = campaign.plan(("fpr_table2", "fpr_table1"), "cpu")
    costs = campaign.Costs(steps)
    first = campaign._row(steps[0])
    row_s = costs.steps([s for s in steps if campaign._row(s) == first], set())
    assert campaign._pick(list(steps), costs, None, None) == (steps[0], first)
    assert campaign._pick(list(steps), costs, row_s + 1, None) == (steps[0], first)
    # not enough time for a CIFAR row: the first (MNIST) row that fits, never a row that does not
    mnist = next(s for s in steps if s.cfg.dataset == "mnist")
    mnist_s = costs.steps([s for s in steps if campaign._row(s) == campaign._row(mnist)], set())
    assert mnist_s < row_s
    assert campaign._pick(list(steps), costs, mnist_s + 1, None) == (mnist, campaign._row(mnist))
    assert campaign._pick(list(steps), costs, 60.0, None) == (None, None)
    # a row whose weights are here (an earlier invocation began it) before the rows in front of it
    later = next(s for s in steps if campaign._row(s) not in (first, campaign._row(mnist)))
    _touch_weights(later.cfg)
    todo = [s for s in steps if s is not later]
    assert campaign._pick(todo, costs, None, None)[1] == campaign._row(later)
    # a row under way is finished even when its estimate no longer fits
    assert campaign._pick(list(steps[1:]), costs, 60.0, first) == (steps[1], first)


@pytest.mark.parametrize("hours", ["0", "-1", "nan"])
def test_hours_must_be_positive(hours, capsys):
    with pytest.raises(SystemExit) as err:
        campaign.main(["--hours", hours])
    assert err.value.code == 2 and "--hours must be a positive number" in capsys.readouterr().err


def test_an_evaluation_whose_weights_are_here_goes_first():
    """Table 4 analyses Table 2's Madry run: done while its weights exist (the natural classifier
    it also needs is cheap to train), not after the rest of Table 2 when they are gone."""
    steps = campaign.plan(("fpr_table2", "fpr_table4"), "cpu")
    costs = campaign.Costs(steps)
    madry0 = steps[0].cfg
    _touch_weights(madry0)
    todo = steps[1:]  # Madry seed 0 trained
    t4 = next(s for s in todo if s.key == "fpr_table4" and s.cfg.run_id == madry0.run_id)
    classifier = t4.analyses[1][1]["classifier"]
    assert classifier.method == "st" and costs.train(classifier) <= campaign.CHEAP_TRAIN_S
    natural = next(s for s in todo if s.kind == "train" and s.cfg.run_id == classifier.run_id)
    assert campaign._pick(todo, costs, None, None) == (natural, None)  # its planned (logged) training first
    # worth it while the classifier costs less than retraining the Madry run later, not beyond
    present = campaign.weights_here(todo)
    costs.rate[campaign._family(madry0, by_method=True)] = campaign._passes(madry0) / 3000.0  # a slow host
    half = 0.5 * costs.train(madry0)
    assert half == pytest.approx(1500.0)
    costs.rate[campaign._family(classifier, by_method=True)] = campaign._passes(classifier) / half
    assert costs.train(classifier) == pytest.approx(half) and campaign._worth_now(t4, costs, present)
    costs.rate[campaign._family(classifier, by_method=True)] = campaign._passes(classifier) / (1.1 * half)
    assert not campaign._worth_now(t4, costs, present)
    assert campaign._pick(todo, costs, None, None) == (todo[0], campaign._row(todo[0]))  # the plan goes on
    costs = campaign.Costs(steps)
    _touch_weights(classifier)
    todo.remove(natural)
    own, _ = campaign._pick(todo, costs, None, None)  # the classifier's own gradient maps come first in plan order
    assert own.kind == "evaluate" and own.cfg.run_id == classifier.run_id
    todo.remove(own)
    assert campaign._pick(todo, costs, None, None) == (t4, None)
    # ... unless the time left is too short for it and the row under way
    step, _ = campaign._pick(todo, costs, 1.0, campaign._row(steps[0]))
    assert step is todo[0]


def test_smoke_campaign_runs_resumes_and_reports(real_mnist, tmp_path):
    keys = ("fpr_table1",)
    steps = campaign.plan(keys, "smoke")
    assert [s.kind for s in steps].count("evaluate") == 3  # one row per label, one seed
    assert campaign.run(keys, "smoke", max_steps=4, inprocess=True) == 0  # "killed" after 4 steps
    done = [s for s in steps if campaign.is_done(s)]
    assert len(done) == 4
    assert campaign.run(keys, "smoke", inprocess=True) == 0  # the same command goes on
    assert all(campaign.is_done(s) for s in steps)
    log = [json.loads(l) for l in campaign.log_path().read_text().splitlines()]
    trained = [r["run_id"] for r in log if r["step"] == "train"]
    assert len(trained) == len(set(trained)) == 6  # nothing trained twice (3 rows + 3 partners)
    table = json.loads((campaign._results_dir() / "fpr_table1-smoke.json").read_text())
    assert all(r["state"] == "evaluated" for r in table["runs"])
    st = campaign.status(keys, "smoke")["tables"]["fpr_table1"]
    assert st["trained"] == st["runs"] == 3 and st["evaluated"] == st["to_evaluate"] == 3
    assert st["cpu_hours_left"] == 0
    # the book's compute ledger: one row per evaluated run, its evaluation against its training
    costs = campaign.cost_table()
    assert sorted(costs["run id"]) == sorted(s.cfg.run_id for s in steps if s.kind == "evaluate")
    assert (costs["train (s)"] > 0).all() and (costs["eval (s)"] >= 0).all()
    ev = next(r for r in log if r["step"] == "evaluate")
    row = costs.set_index("run id").loc[ev["run_id"]]
    assert row["eval / train"] == round(ev["eval_seconds"] / row["train (s)"], 2)
    assert "3 evaluated runs" in campaign.cost_caption(costs)
    # a run with complete records but no weights (a fresh clone) is not retrained
    cfg = steps[0].cfg
    (runs.run_dir(cfg) / "model.pt").unlink()
    assert runs.records_complete(cfg) and campaign.is_done(steps[0])
    # ... unless a step needs its weights: then the retraining is timed in the step's record
    ev = next(s for s in steps if s.kind == "evaluate" and s.cfg.run_id == cfg.run_id)
    rec = campaign.execute(ev)
    assert list(rec["retrained"]) == [cfg.run_id] and 0 < rec["retrained"][cfg.run_id] <= rec["seconds"]
    assert "retrained" not in campaign.execute(ev)  # the weights are here now


def test_a_step_made_stale_by_a_retrain_is_done_again_in_the_same_invocation(monkeypatch):
    """Retraining a run on other hardware changes its weights, and the evaluations that measured
    the old weights (its own, and its partner's transfer columns) are no longer found: the
    running campaign takes them again while the weights are here, not at the next invocation."""
    steps = campaign.plan(("fpr_table1",), "smoke")
    evals = [s for s in steps if s.kind == "evaluate"]
    done = {s.to_json(): s is not evals[-1] for s in steps}  # one evaluation left to do
    monkeypatch.setattr(campaign, "is_done", lambda s: done[s.to_json()])
    ran = []

    def execute(step):
        ran.append(step)
        done[step.to_json()] = True
        if len(ran) == 1:
            done[evals[0].to_json()] = False  # its weights were retrained by this step
        return {"step": step.kind, "key": step.key, "label": step.label, "seed": step.cfg.seed,
                "run_id": step.cfg.run_id, "seconds": 0.0}

    monkeypatch.setattr(campaign, "execute", execute)
    monkeypatch.setattr(campaign, "_refresh", lambda *a: None)
    assert campaign.run(("fpr_table1",), "smoke", inprocess=True) == 0
    assert [s.to_json() for s in ran] == [evals[-1].to_json(), evals[0].to_json()]


def test_a_step_in_its_own_interpreter_echoes_progress_and_returns_its_record(real_mnist, capsys):
    """The subprocess protocol of `campaign.run`: the child's epoch lines are echoed indented
    (so `make campaign` shows progress), its last JSON line is the step's record."""
    step = campaign.plan(("fpr_table1",), "smoke")[0]
    assert step.kind == "train"
    rec, tail = campaign._subprocess_step(step, "smoke")
    assert rec is not None, tail
    assert rec["run_id"] == step.cfg.run_id and rec["train_seconds"] > 0
    out = capsys.readouterr().out
    assert f"    [{step.cfg.run_id}] epoch 1/{step.cfg.epochs}" in out
    assert runs.records_complete(step.cfg)


def test_bf16_runs_are_skipped_where_bf16_is_slow(monkeypatch, capsys):
    """On a CPU without bf16 instructions (bf16 matmuls hundreds of times slower than fp32,
    as on the AVX2-only EPYC of 2026-12-02) the bf16 check's steps are skipped with a reason,
    not started; a bf16 run trained by hand there warns."""
    import torch

    from robustbook import device

    monkeypatch.setitem(device._BF16_SPEED, "cpu", 0.003)
    steps = campaign.plan(("fpr_table2_bf16",), "smoke")
    assert steps and all(campaign._needs_fast_bf16(s) for s in steps)
    assert campaign.run(("fpr_table2_bf16",), "smoke", inprocess=True) == 0
    out = capsys.readouterr().out
    assert f"skipping {len(steps)} steps of bf16 runs (fpr_table2_bf16)" in out and "0.003x" in out
    assert not any(runs.run_dir(s.cfg).exists() for s in steps)
    st = campaign.status(("fpr_table2_bf16",), "smoke")
    assert "skipped here: no fast bf16" in campaign.format_status(st)
    st = campaign.status(("fpr_table2_bf16",), "cpu")  # hours, not the smoke profile's seconds
    assert st["cpu_hours_left"] > 1 and st["cpu_hours_left_here"] == 0  # left out of what this machine can do
    assert "of which 0.00 can run on this CPU" in campaign.format_status(st)
    with pytest.warns(UserWarning, match="precision='bf16' on this CPU"):
        runs._autocast(steps[0].cfg, torch.device("cpu"))
    monkeypatch.setitem(device._BF16_SPEED, "cpu", 2.0)  # a CPU with AMX: planned as usual
    assert not any(campaign._needs_fast_bf16(s) for s in steps)


def test_cost_table_charges_an_evaluation_to_the_weights_it_measured(tmp_path):
    """An evaluation on a fresh clone retrains its run first: the ratio is against that
    retraining (the weights measured), not the old record's, and the lost-weights cost is shown."""
    log = tmp_path / "log.jsonl"
    recs = [{"step": "train", "key": "t", "label": "r", "seed": 0, "run_id": "a", "train_seconds": 3000.0, "seconds": 3000.0},
            {"step": "evaluate", "key": "t", "label": "r", "seed": 0, "run_id": "a", "eval_seconds": 300.0,
             "retrained": {"a": 1200.0, "b": 1000.0}, "seconds": 2550.0},
            {"step": "train", "key": "t", "label": "r", "seed": 1, "run_id": "c", "train_seconds": 1000.0, "seconds": 1000.0},
            {"step": "evaluate", "key": "t", "label": "r", "seed": 1, "run_id": "c", "eval_seconds": 100.0, "seconds": 110.0}]
    log.write_text("".join(json.dumps(r) + "\n" for r in recs))
    table = campaign.cost_table(log).set_index("run id")
    assert table.loc["a", "train (s)"] == 1200.0 and table.loc["a", "eval / train"] == 0.25
    assert table.loc["a", "retrained (s)"] == 2200 and table.loc["a", "other (s)"] == 50
    assert table.loc["c", "train (s)"] == 1000.0 and table.loc["c", "retrained (s)"] == 0 and table.loc["c", "other (s)"] == 10
    assert "0.6 h of the evaluation steps went to retraining" in campaign.cost_caption(table.reset_index(), log)


def test_cost_table_takes_a_resumed_evaluations_time_from_its_record(tmp_path, monkeypatch):
    """A step that resumed a killed evaluation logged only its own process's seconds (137 s for
    AELF Table 2 ST seed 0, whose sections took 550 s): the record it wrote, matched by time,
    gives the whole cost; a record written much later (another evaluation) is not used."""
    log = tmp_path / "log.jsonl"
    recs = [{"step": "train", "key": "t", "label": "r", "seed": 0, "run_id": "a", "train_seconds": 273.0, "seconds": 275.0},
            {"step": "evaluate", "key": "t", "label": "r", "seed": 0, "run_id": "a", "eval_seconds": 137.0,
             "seconds": 140.0, "finished": "2026-12-02T20:08:59"},
            {"step": "train", "key": "t", "label": "r", "seed": 1, "run_id": "b", "train_seconds": 233.0, "seconds": 235.0},
            {"step": "evaluate", "key": "t", "label": "r", "seed": 1, "run_id": "b", "eval_seconds": 100.0,
             "seconds": 101.0, "finished": "2026-12-02T20:30:00"}]
    log.write_text("".join(json.dumps(r) + "\n" for r in recs))
    sections = {"clean": {"seconds": 4.7}, "pgd-16": {"seconds": 86.3}, "pgd-40": {"seconds": 52.7},
                "shift-left/pgd-16": {"seconds": 89.2}, "shift-up/pgd-16": {"seconds": 317.1}}
    stored = {("t", "a"): {"seconds_total": 137.0, "results": sections, "created": "2026-12-02T20:08:58"},
              ("t", "b"): {"seconds_total": 100.0, "results": sections, "created": "2026-12-03T06:00:00"}}
    monkeypatch.setattr(campaign, "_stored_evaluations", lambda profile: stored)
    table = campaign.cost_table(log).set_index("run id")
    assert table.loc["a", "eval (s)"] == 550 and table.loc["a", "eval / train"] == round(550 / 273.0, 2)
    assert table.loc["b", "eval (s)"] == 100
