import numpy as np
import pytest
import torch

from robustbook import data


def test_real_mnist_loads_exact(real_mnist):
    full = data.load("mnist", "test")
    assert full.x.shape == (10000, 1, 28, 28) and full.x.dtype == torch.float32
    assert full.y.dtype == torch.int64 and set(full.y.unique().tolist()) == set(range(10))
    assert 0.0 <= float(full.x.min()) and float(full.x.max()) == 1.0
    assert not full.is_subset and full.official == 10000
    # the first MNIST test label is 7, the second 2 (the official order)
    assert full.y[:3].tolist() == [7, 2, 1]
    assert data.size("mnist", "test") == 10000 and data.size("mnist", "train") == 60000


def test_cifar_subset_is_recorded(real_cifar):
    train = data.load("cifar10", "train")
    assert train.x.shape == (4000, 3, 32, 32)
    assert real_cifar.x.shape == (1000, 3, 32, 32)
    assert train.is_subset and train.available == 4000 and train.official == 50000
    assert "4000 of 50000" in train.describe() and "cifar10_4k1k" in train.source
    # CIFAR-10's first training labels: frog, truck, truck, deer, automobile
    assert train.y[:5].tolist() == [6, 9, 9, 4, 1]


def test_balanced_subset_is_deterministic_and_balanced(real_mnist):
    a = data.load("mnist", "train", n=500, seed=3)
    b = data.load("mnist", "train", n=500, seed=3)
    c = data.load("mnist", "train", n=500, seed=4)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.indices, c.indices)
    assert a.y.bincount().tolist() == [50] * 10
    full = data.load("mnist", "train")
    assert torch.equal(full.x[a.indices], a.x)


def test_balanced_subset_uneven_classes():
    y = torch.tensor([0] * 2 + [1] * 50 + [2] * 50)
    idx = data.balanced_subset(y, 30, seed=0)
    counts = y[idx].bincount().tolist()
    assert counts[0] == 2 and sorted(counts[1:]) == [14, 14]
    assert len(set(idx.tolist())) == 30
    with pytest.raises(ValueError, match="only 102"):
        data.balanced_subset(y, 200)


def test_missing_dataset_offline_names_both_options(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTBOOK_DATA", str(tmp_path))
    monkeypatch.setenv("ROBUSTBOOK_DOWNLOAD", str(tmp_path / "dl"))
    import torchvision.datasets as tvd

    def offline(*a, **k):
        raise OSError("no internet")

    monkeypatch.setattr(tvd, "CIFAR100", offline)
    data._load_uint8.cache_clear()
    with pytest.raises(data.DatasetNotFound) as err:
        data.load("cifar100", "train")
    msg = str(err.value)
    assert "ROBUSTBOOK_DATA" in msg and "cifar100.npz" in msg and "download" in msg
    with pytest.raises(data.DatasetNotFound):
        data.size("cifar100", "test")


def test_npz_archive_of_synthetic_cifar100_and_stl10(tmp_path, monkeypatch):
    """CIFAR-100 and STL-10 are not available offline: check the archive path on tensors of their shape."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "cifar100.npz",
             x_train=rng.integers(0, 256, (200, 32, 32, 3), dtype=np.uint8), y_train=np.arange(200) % 100,
             x_test=rng.integers(0, 256, (100, 32, 32, 3), dtype=np.uint8), y_test=np.arange(100) % 100)
    np.savez(tmp_path / "stl10.npz",
             x_train=rng.integers(0, 256, (20, 96, 96, 3), dtype=np.uint8), y_train=np.arange(20) % 10,
             x_test=rng.integers(0, 256, (10, 96, 96, 3), dtype=np.uint8), y_test=np.arange(10) % 10)
    monkeypatch.setenv("ROBUSTBOOK_DATA", str(tmp_path))
    data._load_uint8.cache_clear()
    c = data.load("cifar100", "train", n=100)
    assert c.x.shape == (100, 3, 32, 32) and c.num_classes == 100 and c.y.bincount().tolist() == [1] * 100
    s = data.load("stl10", "test")
    assert s.x.shape == (10, 3, 96, 96) and s.official == 8000 and s.is_subset


def test_torchvision_stl10_layout(monkeypatch, tmp_path):
    """STL-10 through torchvision comes NCHW; CIFAR NHWC: both end up NCHW."""
    x = data.to_tensor(np.zeros((2, 3, 96, 96), np.uint8), (3, 96, 96))
    assert x.shape == (2, 3, 96, 96)
    x = data.to_tensor(np.zeros((2, 32, 32, 3), np.uint8) + 255, (3, 32, 32))
    assert x.shape == (2, 3, 32, 32) and float(x.max()) == 1.0
    x = data.to_tensor(np.zeros((2, 28, 28), np.uint8), (1, 28, 28))
    assert x.shape == (2, 1, 28, 28)


def test_bad_names():
    with pytest.raises(ValueError, match="unknown dataset"):
        data.load("imagenet")
    with pytest.raises(ValueError, match="split"):
        data.load("mnist", "val")


def test_batches_cover_each_example_once_and_are_seeded():
    x = torch.arange(10, dtype=torch.float32).view(10, 1, 1, 1).expand(10, 1, 4, 4).contiguous()
    y = torch.arange(10)
    got = [yb for _, yb in data.batches(x, y, 4, generator=torch.Generator().manual_seed(0))]
    assert [len(b) for b in got] == [4, 4, 2]
    assert sorted(torch.cat(got).tolist()) == list(range(10))
    again = [yb for _, yb in data.batches(x, y, 4, generator=torch.Generator().manual_seed(0))]
    assert all(torch.equal(a, b) for a, b in zip(got, again))
    for xb, yb in data.batches(x, y, 3, augment="crop_flip", padding=1, generator=torch.Generator().manual_seed(1)):
        # a crop of a constant image is that constant or the zero padding
        vals = set(xb.unique().tolist())
        assert vals <= set(yb.float().tolist()) | {0.0}
    assert len(list(data.batches(x, y, 4, drop_last=True))) == 2
