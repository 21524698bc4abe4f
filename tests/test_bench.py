"""The benchmark runs end to end on a tiny model in seconds and writes valid JSON."""

import json

import pytest
import torch

from robustbook import bench


@pytest.fixture(scope="module")
def tiny_result(tmp_path_factory):
    from robustbook import device

    out = tmp_path_factory.mktemp("bench") / "tiny.json"
    saved = dict(device._BF16_SPEED)
    device._BF16_SPEED["cpu"] = 2.0  # the bf16 variants' plumbing, on any CPU (tiny model: cheap)
    try:
        result = bench.run(models=["tiny"], batch=8, repeats=1, pgd_steps=2, train_steps=1, eval_models=["tiny"],
                           eval_pgd=[1, 3], eval_cw=[2], eval_repeats=1, agree_batches=1, use_stored_weights=False,
                           label="test", out=out, verbose=False)
    finally:
        device._BF16_SPEED.clear()
        device._BF16_SPEED.update(saved)
    return out, result


def test_writes_valid_json_with_machine_fields(tiny_result):
    out, result = tiny_result
    stored = json.loads(out.read_text())
    assert stored["label"] == "test" and stored["schema"] == 1
    m = stored["machine"]
    for key in ("cpu", "cores", "threads", "torch", "device", "cpu_capability"):
        assert m[key] not in (None, ""), key
    assert m["torch"] == torch.__version__ and m["threads"] == torch.get_num_threads()
    assert stored["ceiling"]["fp32_gflops"] > 0
    assert stored["models"]["tiny"]["pgd_step_flops"] > 0
    sections = {r["section"] for r in stored["results"]}
    assert {"pgd", "agreement", "train", "eval", "data"} <= sections
    for r in stored["results"]:
        if "images_per_s" in r:
            assert r["images_per_s"] > 0 and len(r["seconds"]) == len(r["load"]) == 1


def test_variants_and_derived_numbers(tiny_result):
    _, result = tiny_result
    variants = {(r["section"], r["variant"]) for r in result["results"]}
    for v in ("ours_exact_fp32", "ours_fp32", "ours_bf16", "torchattacks_fp32"):
        assert ("pgd", v) in variants, v
    for v in ("naive_fp32", "ours_fp32", "ours_bf16"):
        assert ("train", v) in variants, v
    methods = {r["method"] for r in result["results"] if r["section"] == "train"}
    assert methods == set(bench.TRAIN_METHODS)
    d = result["derived"]["tiny"]
    for key in ("pgd_ours_fp32_vs_torchattacks", "pgd_ours_low_vs_torchattacks_fp32", "train_pgd_at_ours_fp32_vs_naive",
                "eval_record_steps_speedup", "pgd_gflops_fp32", "pgd_fp32_fraction_of_ceiling"):
        assert d[key] > 0, key
    assert d["eval_tables_equal"] is True  # record_steps gives the table of separate runs
    assert d["eval_step_ratio"] == pytest.approx((1 + 3 + 2) / (3 + 2))
    skip = next(r for r in result["results"] if r["section"] == "eval" and r["variant"] == "record_steps_skip")
    assert skip["attacked"] == round(skip["accuracy"]["clean"] * skip["images"])  # only clean-correct images
    assert all(v <= skip["accuracy"]["clean"] for v in skip["accuracy"].values())
    assert d["eval_record_skip_speedup"] > 0 and 0 <= d["eval_attacked_fraction"] <= 1
    agree = next(r for r in result["results"] if r["section"] == "agreement")
    assert agree["n"] == 8 and 0 <= agree["adv_pred_differ"] <= 8
    assert agree["exact_equals_torchattacks"] is True


def test_summary_table(tiny_result):
    pytest.importorskip("pandas")
    out, _ = tiny_result
    df = bench.summary(out)
    assert list(df.index) == ["tiny"]
    assert "ours/torchattacks fp32" in df.columns and df.loc["tiny", "ours/torchattacks fp32"] > 0
    both = bench.summary([out, out])
    assert len(both) == 2 and both.index.names == ["run", "model"]
    assert "AMD" in bench.machine_line(out) or "threads" in bench.machine_line(out)


def test_cli_quick(tmp_path, monkeypatch):
    from robustbook import device

    monkeypatch.setitem(device._BF16_SPEED, "cpu", 2.0)  # agreement rows on any CPU
    out = tmp_path / "cli.json"
    bench.main(["--quick", "--models", "tiny", "--batch", "4", "--sections", "pgd", "--no-stored-weights",
                "--out", str(out)])
    stored = json.loads(out.read_text())
    assert stored["label"] == "cli" and stored["settings"]["repeats"] == 1
    assert {r["section"] for r in stored["results"]} == {"pgd", "agreement"}


def test_unknown_model_raises():
    with pytest.raises(ValueError, match="unknown benchmark model"):
        bench.run(models=["resnet50"], verbose=False)


def test_compare_before_after(tiny_result):
    pytest.importorskip("pandas")
    out, _ = tiny_result
    table = bench.compare(out, out)
    assert ("ours/torchattacks fp32", "before") in table.columns
    assert table.loc["tiny", ("ours/torchattacks fp32", "after")] > 0


def test_campaign_section_times_each_distinct_training_config(real_cifar):
    """One row per distinct training cost of the experiment (the IJCAI lambda rows share the
    conference rows' cost), keyed by the run id the campaign trains, with predicted seconds."""
    from robustbook import presets, runs

    results = []
    bench._campaign_section(["fpr_table2"], 1, torch.device("cpu"), results, lambda s: None, profile="smoke")
    exp = presets.get("fpr_table2")
    labels = [label for label, _ in exp.runs]
    assert len(labels) == 6 and len(results) == 4  # lambda = 1 / 0.1 rows deduplicated
    assert [r["variant"] for r in results] == labels[:4]
    planned = {runs.run_id(cfg) for _, cfg in exp.configs("smoke", seeds=[0])}
    for r in results:
        assert r["section"] == "campaign" and r["model"] == "fpr_table2"
        assert r["run_id"] in planned and r["images_per_s"] > 0
        assert r["train_seconds"] == pytest.approx(r["train_images"] / r["images_per_s"] * r["epochs"])
    table = bench.campaign_table({"results": results})
    assert list(table.index) == [f"fpr_table2: {label}" for label in labels[:4]] and table.iloc[0, -1] == 1.0


def test_no_bf16_variants_where_bf16_is_slow(monkeypatch):
    """On a CPU without bf16 instructions (a 2048 bf16 matmul takes a minute) the bench skips
    the reduced-precision ceiling, variants and agreement, and records the measured ratio."""
    from robustbook import device

    monkeypatch.setitem(device._BF16_SPEED, "cpu", 0.003)
    result = bench.run(models=["tiny"], batch=4, repeats=1, pgd_steps=1, train_steps=1, sections=["pgd", "train"],
                       train_methods=["pgd_at"], agree_batches=1, use_stored_weights=False, device="cpu",
                       verbose=False)
    variants = {(r["section"], r["variant"]) for r in result["results"]}
    assert ("pgd", "ours_fp32") in variants and ("train", "ours_fp32") in variants
    assert not any("bf16" in v for _, v in variants) and "agreement" not in {s for s, _ in variants}
    assert result["ceiling"]["bf16_speed"] == 0.003 and "bf16_gflops" not in result["ceiling"]


def test_stop_section_compares_both_ways_on_a_stored_run(real_mnist, tmp_path, monkeypatch):
    """The `stop` section attacks a stored run both ways: the early-stopped attack costs fewer
    forward passes and leaves no image robust that the last iterate broke."""
    from conftest import tiny_mnist_cfg
    from robustbook import runs

    monkeypatch.setenv("ROBUSTBOOK_RUNS", str(tmp_path))
    run = runs.train(tiny_mnist_cfg(method="st", steps=0, epochs=1, test_size=48), root=tmp_path, progress=False)
    assert bench._default_stop_runs() == [run.id]
    results = []
    bench._stop_section([run.id], 48, 1, torch.device("cpu"), results, lambda s: None)
    last, stop = results
    assert (last["variant"], stop["variant"]) == ("last_iterate", "stop_when_fooled")
    assert last["image_steps"] == 48 * 16 and stop["image_steps"] < last["image_steps"]
    assert stop["accuracy"] <= last["accuracy"] <= last["clean_accuracy"]
    assert stop["robust_only_to_stop"] == 0
    row = bench.stop_table({"results": results}).loc[run.id]
    assert row["last iterate (%)"] == round(100 * last["accuracy"], 2)
    assert row["gap (points)"] == round(100 * (last["accuracy"] - stop["accuracy"]), 2) >= 0
    assert row["images robust only to the last iterate"] == last["robust_only_to_last"]
    assert row["forward passes, last / stop"] == f"{48 * 16} / {stop['image_steps']}"
    assert bench.stop_table({"results": []}).empty
    monkeypatch.setattr(bench, "STOP_ATTACK", {"cifar10": bench.STOP_ATTACK["cifar10"]})
    with pytest.raises(ValueError, match="no attack for dataset 'mnist'"):
        bench._stop_section([run.id], 8, 1, torch.device("cpu"), results, lambda s: None)
