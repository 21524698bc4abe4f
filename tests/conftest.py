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
