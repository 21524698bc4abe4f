import dataclasses
import json

import pytest
from conftest import tiny_mnist_cfg
import torch

from robustbook import methods, runs
from robustbook.config import ConfigError




def test_train_writes_records_and_reloads_fast(real_mnist, tmp_path, monkeypatch):
    cfg = tiny_mnist_cfg()
    run = runs.train(cfg)
    folder = run.dir
    assert folder.name == cfg.run_id
    for name in ("config.json", "env.json", "metrics.jsonl", "model.pt"):
        assert (folder / name).exists(), name
    assert not (folder / "checkpoint.pt").exists()
    record = json.loads((folder / "config.json").read_text())
    assert record["_run_id"] == cfg.run_id and "64 of 60000" in record["_train_data"]
    env = json.loads((folder / "env.json").read_text())
    assert env["torch"] == torch.__version__ and env["device"] == "cpu"
    assert env["git_dirty"] in (True, False, None) and env["fast_path"] is True
    assert env["cpu"] and set(env["cpu_flags"]) <= {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}
    assert str(runs.runs_root()) not in (folder / "config.json").read_text()  # no machine paths
    assert "/" + "work" not in record["_train_data"] and "$ROBUSTBOOK_DATA" in record["_train_data"]
    rows = [json.loads(l) for l in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert {"loss", "test_clean", "test_pgd", "train_clean", "images_per_s", "seconds"} <= set(rows[0])
    assert all(r["test_pgd"] <= r["test_clean"] for r in rows)

    def no_training(*a, **k):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(runs, "_train", no_training)
    again = runs.train(cfg)  # finished: loaded, not retrained
    for (k, a), (_, b) in zip(run.model.state_dict().items(), again.model.state_dict().items()):
        assert torch.equal(a, b), k
    assert again.metrics == run.metrics


def test_killed_run_resumes_to_the_same_weights(real_mnist, tmp_path, monkeypatch):
    cfg = tiny_mnist_cfg(epochs=3)
    full = runs.train(cfg, root=tmp_path / "a")

    real = methods.METHODS["pgd_at"].loss
    calls = {"n": 0}

    def dies_in_epoch_2(*args, **kw):
        calls["n"] += 1
        if calls["n"] > 3:  # 2 batches per epoch: dies in the second batch of epoch 2
            raise KeyboardInterrupt("killed")
        return real(*args, **kw)

    method = methods.METHODS["pgd_at"]
    monkeypatch.setitem(methods.METHODS, "pgd_at", dataclasses.replace(method, loss=dies_in_epoch_2))
    with pytest.raises(KeyboardInterrupt):
        runs.train(cfg, root=tmp_path / "b")
    folder = runs.run_dir(cfg, tmp_path / "b")
    assert (folder / "checkpoint.pt").exists() and not (folder / "model.pt").exists()
    monkeypatch.setitem(methods.METHODS, "pgd_at", method)
    resumed = runs.train(cfg, root=tmp_path / "b")
    for (k, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k
    assert [r["epoch"] for r in resumed.metrics] == [1, 2, 3]


def test_aelfs_starts_from_st_and_keeps_head(real_mnist, tmp_path):
    cfg = tiny_mnist_cfg(method="aelfs", ratio=(0.5, 0.5), beta=0.5, pretrain_epochs=1, epochs=1)
    run = runs.train(cfg)
    st = runs.load_run(runs.st_config(cfg))
    assert torch.equal(st.model.head.weight, run.model.head.weight)
    assert torch.equal(st.model.head.bias, run.model.head.bias)
    assert not torch.equal(st.model.features(real_mnist.x[:4]), run.model.features(real_mnist.x[:4]))


def test_bad_inputs():
    with pytest.raises(TypeError, match="RunConfig"):
        runs.train({"method": "pgd_at"})
    with pytest.raises(FileNotFoundError, match="not finished"):
        runs.load_run(tiny_mnist_cfg(seed=99))
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA"):
            runs.resolve_device("cuda")


def test_a_retrain_keeps_the_records_of_the_weights_it_replaces(real_mnist, monkeypatch):
    """A fresh clone retrains a run whose records are committed but whose weights are gone:
    until it finishes the committed records stay as they are (an interrupted retrain changes
    nothing); when its weights differ (other hardware), the old records, which evaluations of the
    old weights refer to by hash, move to superseded/<hash>/."""
    cfg = tiny_mnist_cfg()
    folder = runs.train(cfg).dir
    (folder / "model.pt").unlink()
    old_sha = "ab" * 32  # as if trained elsewhere
    (folder / "weights.json").write_text(json.dumps({"sha256": old_sha, "epochs": cfg.epochs, "run_id": cfg.run_id}))
    (folder / "env.json").write_text('{"host": "elsewhere"}\n')
    old_metrics = (folder / "metrics.jsonl").read_text()
    assert runs.records_complete(cfg)

    real = methods.METHODS["pgd_at"].loss

    def dies(*args, **kw):
        raise KeyboardInterrupt("killed")

    monkeypatch.setitem(methods.METHODS, "pgd_at", dataclasses.replace(methods.METHODS["pgd_at"], loss=dies))
    with pytest.raises(KeyboardInterrupt):
        runs.train(cfg)
    assert (folder / "env.json").read_text() == '{"host": "elsewhere"}\n'
    assert (folder / "metrics.jsonl").read_text() == old_metrics
    assert json.loads((folder / "weights.json").read_text())["sha256"] == old_sha

    monkeypatch.setitem(methods.METHODS, "pgd_at", dataclasses.replace(methods.METHODS["pgd_at"], loss=real))
    run = runs.train(cfg)
    kept = folder / "superseded" / old_sha[:12]
    assert (kept / "env.json").read_text() == '{"host": "elsewhere"}\n'
    assert (kept / "metrics.jsonl").read_text() == old_metrics
    assert json.loads((kept / "weights.json").read_text())["sha256"] == old_sha
    new_sha = json.loads((folder / "weights.json").read_text())["sha256"]
    assert new_sha != old_sha and new_sha == runs.weights_sha256(run.model.state_dict())
    assert json.loads((folder / "env.json").read_text())["device"] == "cpu"
    assert not (folder / "env.retrain.json").exists() and not (folder / "metrics.retrain.jsonl").exists()
