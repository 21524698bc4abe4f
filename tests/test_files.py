"""Partial files and concurrent processes (robustbook.files, issue 11): atomic writes, torn
metrics lines, a truncated checkpoint, and the per-run lock."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import tiny_mnist_cfg
from robustbook import files, methods, runs


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "sub" / "record.json"
    files.atomic_write_json({"a": 1}, path)
    assert json.loads(path.read_text()) == {"a": 1}

    def fails(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fails)
    with pytest.raises(OSError, match="disk full"):
        files.atomic_write_json({"a": 2}, path)
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"a": 1}
    assert sorted(p.name for p in path.parent.iterdir()) == ["record.json"]  # no temporary left behind


def test_a_torn_last_line_is_dropped_damage_elsewhere_names_the_file(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 1}\n{"epoch": 2}\n{"epo')  # a write cut short by a kill
    assert files.read_jsonl(path) == [{"epoch": 1}, {"epoch": 2}]
    path.write_text('{"epoch": 1}\n{"epo\n{"epoch": 3}\n')
    with pytest.raises(files.TornFile, match="metrics.jsonl"):
        files.read_jsonl(path)


_HOLD = """
import sys, time
from robustbook import files
with files.RunLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_run_lock_excludes_another_process_and_dies_with_it(tmp_path):
    folder = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        assert files.RunLock.holder(folder) == proc.pid
        with pytest.raises(files.RunLocked, match=f"pid {proc.pid}"):
            with files.RunLock(folder):
                pass
        os.kill(proc.pid, signal.SIGKILL)  # the holder dies: no stale lock
        proc.wait(timeout=30)
        with files.RunLock(folder, wait=5):
            with files.RunLock(folder):  # re-entrant within a process
                assert files.RunLock.holder(folder) == os.getpid()
    finally:
        proc.kill()


def test_truncated_checkpoint_resumes_from_the_previous_one(real_mnist, tmp_path, monkeypatch):
    """Killed in epoch 3 with checkpoint.pt then cut short (and a torn metrics line): training
    resumes from checkpoint.prev.pt (epoch 1) and ends with the uninterrupted run's weights."""
    cfg = tiny_mnist_cfg(epochs=3)
    full = runs.train(cfg, root=tmp_path / "a")
    method = methods.METHODS["pgd_at"]
    calls = {"n": 0}

    def dies_in_epoch_3(*args, **kw):
        calls["n"] += 1
        if calls["n"] > 5:  # 2 batches per epoch
            raise KeyboardInterrupt("killed")
        return method.loss(*args, **kw)

    monkeypatch.setitem(methods.METHODS, "pgd_at", dataclasses.replace(method, loss=dies_in_epoch_3))
    with pytest.raises(KeyboardInterrupt):
        runs.train(cfg, root=tmp_path / "b")
    monkeypatch.setitem(methods.METHODS, "pgd_at", method)
    folder = runs.run_dir(cfg, tmp_path / "b")
    ckpt = folder / "checkpoint.pt"
    assert (folder / "checkpoint.prev.pt").exists()
    ckpt.write_bytes(ckpt.read_bytes()[:1000])  # truncated
    with open(folder / "metrics.jsonl", "a") as fh:
        fh.write('{"epoch": 3, "lo')  # torn
    resumed = runs.train(cfg, root=tmp_path / "b")
    for (k, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k
    assert [r["epoch"] for r in resumed.metrics] == [1, 2, 3]
    assert not ckpt.exists() and not (folder / "checkpoint.prev.pt").exists()
