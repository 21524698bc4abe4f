"""Test setup: real data from $ROBUSTBOOK_DATA (default ../shared/data beside the repo),
a throw-away run store, quiet progress bars."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_shared = REPO.parent / "shared" / "data"
if not os.environ.get("ROBUSTBOOK_DATA") and _shared.exists():
    os.environ["ROBUSTBOOK_DATA"] = str(_shared)
os.environ.setdefault("ROBUSTBOOK_QUIET", "1")


@pytest.fixture(autouse=True)
def _run_store(tmp_path, monkeypatch):
    """Every test gets its own empty run store, never the repo's data/runs."""
    monkeypatch.setenv("ROBUSTBOOK_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("ROBUSTBOOK_RESULTS", str(tmp_path / "results"))  # never the repo's data/results
    yield


def has_real(name: str) -> bool:
    root = os.environ.get("ROBUSTBOOK_DATA")
    files = {"mnist": ["mnist.npz"], "cifar10": ["cifar10.npz", "cifar10_4k1k.npz"]}[name]
    return bool(root) and any((Path(root) / f).exists() for f in files)


@pytest.fixture
def real_mnist():
    if not has_real("mnist"):
        pytest.skip("real MNIST needs ROBUSTBOOK_DATA pointing at a folder with mnist.npz (CI sets it)")
    from robustbook import data

    return data.load("mnist", "train", n=512)


@pytest.fixture
def real_cifar():
    if not has_real("cifar10"):
        pytest.skip("real CIFAR-10 needs ROBUSTBOOK_DATA pointing at a folder with cifar10_4k1k.npz (CI sets it)")
    from robustbook import data

    return data.load("cifar10", "test")


def tiny_mnist_cfg(**kw):
    """A seconds-long MNIST run config (Madry's CNN, 64 images, PGD-2) for tests; fields overridable."""
    from robustbook.config import RunConfig

    base = dict(dataset="mnist", model="madry_mnist_cnn", model_kw={}, train_size=64, test_size=32,
                probe_size=16, augment="none", batch_size=32, epochs=2, eps=0.3, alpha=0.1, steps=2,
                optimizer="sgd", lr=0.05, profile="smoke")
    base.update(kw)
    return RunConfig(**base)


def fake_entry(rk, acc, eps, role="table", n=1000):
    """A result entry as `evaluate` stores it, for result key `rk` (clean, pgd-K, cw-K,
    transfer/...), with the first round(acc * n) images correct: stored records are judged
    again from these flags on load (`evaluate.rejudged`)."""
    import torch

    from robustbook import evaluate

    attack, _, rest = rk.split("/")[-1].partition("-")
    evidence = {"eps": eps, "alpha": eps / 4, "steps": int(rest.split("-")[0] or 0), "random_start": True,
                "loss": "cw" if attack == "cw" else "ce"}
    return evaluate._entry(torch.arange(n) < round(acc * n), 1.0, role,
                           "transfer" if rk.startswith("transfer/") else attack, evidence)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run faster on one thread, and far faster when other jobs share the cores."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
