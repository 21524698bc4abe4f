"""Many runs at once (robustbook.executor): dependency waves, options, and the local
submitit executor with two workers giving the records of a sequential run, also after a
worker is killed mid-run and the same command is run again."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from robustbook import executor, files, methods, runs
from robustbook.config import RunConfig

pytest.importorskip("submitit")

#: a few images, two PGD steps: the plumbing of the evaluation wave, in seconds
TINY = None  # set below (evaluate imports torch models; keep module import light)
TIMING = {"images_per_s", "train_seconds", "seconds", "seconds_total", "created", "eval_seconds", "timing",
          "git_commit", "crafted_on_source_seconds"}


def _strip(obj):
    """A record without its timings (they differ between any two runs)."""
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in TIMING}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _records(root: Path) -> dict:
    out = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        rec = {"config": json.loads((folder / "config.json").read_text()),
               "metrics": [_strip(json.loads(l)) for l in (folder / "metrics.jsonl").read_text().splitlines()],
               "eval": {p.name.rsplit("-", 1)[0]: _strip(json.loads(p.read_text()))["results"]
                        for p in sorted((folder / "eval").glob("*.json"))}}
        weights = torch.load(folder / "model.pt", weights_only=True)
        rec["weights"] = {k: v.double().sum().item() for k, v in weights.items()}
        out[folder.name] = rec
    return out


def _tiny():
    from robustbook import evaluate

    return evaluate.Suite(name="tiny", eps=0.3, alpha=0.1, pgd_steps=(2,), random_start=(False,), n=16)


TINY = _tiny()

#: the sequential reference: `reproduce` in one process, with TINY
_SEQUENTIAL = """
from robustbook import evaluate, reproduce
suite = evaluate.Suite(name="tiny", eps=0.3, alpha=0.1, pgd_steps=(2,), random_start=(False,), n=16)
reproduce.reproduce(["aelf_table2"], "smoke", suite=suite, progress=False)
"""


def test_waves_put_each_run_after_what_it_needs():
    waves = executor.plan_waves(["aelf_table2", "fpr_table1"], "smoke")
    trained = [[RunConfig.from_dict(t.config) for t in w] for w in waves[:2]]
    assert trained[1] and all(methods.get(c.method).init_from_st for c in trained[1])
    assert not any(methods.get(c.method).init_from_st for c in trained[0])
    first = {c.run_id for c in trained[0]}
    for c in trained[1]:
        assert runs.st_config(c).run_id in first  # its ST start comes a wave earlier
    seeds0 = {c.seed for c in trained[0] if c.dataset == "mnist" and c.method == "at_reg"}
    assert seeds0 == {0, 1}  # fpr_table1's black-box column: the seed-1 partners train in wave 1
    assert len(first) == len(trained[0])  # every run once
    assert [t.kind for t in waves[2]] == ["evaluate"] * len(waves[2]) and len(waves[2]) == 5 + 3
    assert [t.kind for t in waves[3]] == ["collect"] and set(waves[3][0].keys) == {"aelf_table2", "fpr_table1"}


def test_options_from_a_file_and_flags(tmp_path):
    path = tmp_path / "cluster.yaml"
    path.write_text("executor: slurm\npartition: gpu\ntime: 600\ngpus_per_node: 1\nadditional: {account: abc}\n")
    opts = executor.Options.load(str(path), time=90, partition=None)
    assert (opts.executor, opts.partition, opts.time, opts.additional) == ("slurm", "gpu", 90, {"account": "abc"})
    path.write_text("partitoin: gpu\n")
    with pytest.raises(ValueError, match="unknown option.*partitoin"):
        executor.Options.load(str(path))
    with pytest.raises(ValueError, match="choose 'local', 'slurm'"):
        executor.Options.load(None, executor="ssh")


def test_image_passes_count_attack_steps():
    cfg = RunConfig(dataset="mnist", model="madry_mnist_cnn", model_kw={}, train_size=100, epochs=2, steps=3,
                    eps=0.3, alpha=0.1, method="pgd_at")
    assert executor.image_passes(cfg) == 2 * 100 * 4
    assert executor.image_passes(cfg.replace(method="st", steps=0, eps=0.0)) == 2 * 100


def test_local_executor_two_workers_kill_and_resubmit_equals_sequential(real_mnist, tmp_path, monkeypatch):
    """aelf_table2 at smoke (ST, AT, JT, then both AELFs rows from the ST run, five evaluations, the
    table): a worker is killed in wave 1, the driver reports it, the same command completes
    the set, and every record equals the sequential `reproduce` one (run meanwhile in a
    process of its own, one thread like each worker)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("ROBUSTBOOK_FAST", "1")
    seq_root, par_root = tmp_path / "sequential", tmp_path / "parallel"
    sequential = subprocess.Popen(
        [sys.executable, "-c", _SEQUENTIAL], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "ROBUSTBOOK_RUNS": str(seq_root), "ROBUSTBOOK_RESULTS": str(tmp_path / "results-seq")})
    monkeypatch.setenv("ROBUSTBOOK_RUNS", str(par_root))
    opts = executor.Options(executor="local", workers=2, folder=str(tmp_path / "jobs"), time=60, poll_s=0.2)

    def kill_first(job, tasks):
        if kill_first.done:
            return
        kill_first.done = True
        run_dir = par_root / RunConfig.from_dict(tasks[0].config).run_id

        def later():  # once the worker has begun the run, SIGKILL the process training it (a crash,
            t0 = time.time()  # an OOM kill); the run folder's lock names that process
            while files.RunLock.holder(run_dir) is None and time.time() - t0 < 600:  # a loaded machine is slow
                time.sleep(0.05)
            os.kill(files.RunLock.holder(run_dir), signal.SIGKILL)

        threading.Thread(target=later, daemon=True).start()

    kill_first.done = False
    plan = dict(keys=["aelf_table2"], profile="smoke", suite=TINY, root=par_root, results_dir=tmp_path / "results-par")
    with pytest.raises(executor.ExecutorError, match="(?s)wave 1.*failed.*run the same command again"):
        executor.submit_waves(executor.plan_waves(**plan), opts, on_submit=kill_first)
    again = executor.plan_waves(**plan)
    assert again[0], "the killed run is planned again"
    executor.submit_waves(again, opts)

    assert all(not w for w in executor.plan_waves(**plan)[:2])  # nothing left to train
    log, _ = sequential.communicate(timeout=600)
    assert sequential.returncode == 0, log
    seq, par = _records(seq_root), _records(par_root)
    assert sorted(seq) == sorted(par) and len(seq) == 5
    for rid in seq:
        assert seq[rid] == par[rid], rid
    a = _strip(json.loads((tmp_path / "results-seq" / "aelf_table2-smoke.json").read_text()))
    b = _strip(json.loads((tmp_path / "results-par" / "aelf_table2-smoke.json").read_text()))
    no_path = lambda rows: [{k: v for k, v in r.items() if k != "config"} for r in rows]  # noqa: E731
    assert a["cells"] == b["cells"] and no_path(a["runs"]) == no_path(b["runs"])
