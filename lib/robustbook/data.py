"""Datasets as in-memory tensors (airbench style) and a seeded batch iterator.

`load(name, split)` looks, in order, for
1. `$ROBUSTBOOK_DATA/<file>.npz` (keys `x_train y_train x_test y_test`, uint8 NHWC),
   e.g. `../shared/data/mnist.npz`, or `cifar10_4k1k.npz`, the first 4000/1000
   CIFAR-10 images, which is usable as `cifar10` and recorded as that subset;
2. torchvision under `$ROBUSTBOOK_DOWNLOAD` (default `<repo>/data/torchvision`),
   downloading when the internet is reachable.
If neither works it raises `DatasetNotFound` naming both options.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Tuple

import numpy as np
import torch

from . import device as device_mod
from .transforms import augment as _augment

REPO_ROOT = Path(__file__).resolve().parents[2]

# name -> (npz file names tried in order, number of classes, official train/test sizes, image shape CHW)
DATASETS = {
    "mnist": (("mnist.npz",), 10, (60000, 10000), (1, 28, 28)),
    "fashion_mnist": (("fashion_mnist.npz",), 10, (60000, 10000), (1, 28, 28)),
    "cifar10": (("cifar10.npz", "cifar10_4k1k.npz"), 10, (50000, 10000), (3, 32, 32)),
    "cifar100": (("cifar100.npz",), 100, (50000, 10000), (3, 32, 32)),
    "stl10": (("stl10.npz",), 10, (5000, 8000), (3, 96, 96)),
}
SPLITS = ("train", "test")


class DatasetNotFound(FileNotFoundError):
    """Neither a local .npz archive nor torchvision could provide the dataset."""


@dataclass
class Dataset:
    """Images `x` (float32 in [0,1], NCHW) and labels `y` (int64), with their provenance."""

    x: torch.Tensor
    y: torch.Tensor
    name: str
    split: str
    source: str
    """Where the images came from: the .npz path or 'torchvision:<root>'."""
    available: int
    """Images of this split in the source (4000 for the CIFAR-10 4k/1k archive)."""
    official: int
    """Images of this split in the official dataset (50000 for CIFAR-10 train)."""
    num_classes: int
    indices: Optional[torch.Tensor] = None
    """Indices into the source split when a subset `n` was taken."""

    def __iter__(self):
        return iter((self.x, self.y))

    def __len__(self) -> int:
        return len(self.y)

    @property
    def is_subset(self) -> bool:
        """True when these are not all the official images of the split."""
        return len(self) < self.official

    def describe(self) -> str:
        """One line saying what this is, for tables and run records."""
        part = f"{len(self)} of {self.official}" if self.is_subset else f"all {self.official}"
        return f"{self.name} {self.split}: {part} images ({self.source})"


def data_dir() -> Optional[Path]:
    """The local archive directory from $ROBUSTBOOK_DATA, if set."""
    env = os.environ.get("ROBUSTBOOK_DATA")
    return Path(env).expanduser() if env else None


def download_dir() -> Path:
    return Path(os.environ.get("ROBUSTBOOK_DOWNLOAD", REPO_ROOT / "data" / "torchvision")).expanduser()


def locate(name: str) -> Optional[Path]:
    """The local .npz archive that `load` would read for `name`, if any (no download)."""
    root = data_dir()
    if name not in DATASETS or root is None:
        return None
    return next((root / f for f in DATASETS[name][0] if (root / f).exists()), None)


@functools.lru_cache(maxsize=32)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def archive_sha256(path: Path) -> str:
    """sha256 of a local archive (cached per path, size and modification time)."""
    st = Path(path).stat()
    return _sha256(str(path), st.st_size, st.st_mtime_ns)


def source_name(path: Path) -> str:
    """A machine-independent name of a local archive: `$ROBUSTBOOK_DATA/<file> (sha256 <16 hex>)`."""
    return f"$ROBUSTBOOK_DATA/{Path(path).name} (sha256 {archive_sha256(path)[:16]})"


def fingerprint(name: str) -> str:
    """Which data a run of `name` would train and test on, without loading it: the local
    archive's file name and sha256 (`cifar10_4k1k.npz:sha256:<16 hex>`), else
    `torchvision:<name>` (the official splits). Part of every run id (`config.canonical`),
    so runs on the 4k/1k archive and on the full dataset never share an id."""
    path = locate(name)
    if path is not None:
        return f"{path.name}:sha256:{archive_sha256(path)[:16]}"
    return f"torchvision:{name}"


def _check_name(name: str, split: str) -> None:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'test'")


@functools.lru_cache(maxsize=8)
def _load_uint8(name: str, split: str, root: Optional[str], dl_root: str) -> Tuple[np.ndarray, np.ndarray, str]:
    """uint8 images (NHWC or NCHW as stored), labels, and source. Cached per process."""
    files = DATASETS[name][0]
    tried = []
    if root is not None:
        for fname in files:
            path = Path(root) / fname
            tried.append(str(path))
            if path.exists():
                with np.load(path) as z:
                    return z[f"x_{split}"], z[f"y_{split}"].astype(np.int64), source_name(path)
    try:
        x, y = _torchvision_arrays(name, split, dl_root)
        return x, y, f"torchvision {name}"
    except Exception as err:  # offline, corrupt, or torchvision failure
        where = ", ".join(tried) if tried else "$ROBUSTBOOK_DATA is not set"
        raise DatasetNotFound(
            f"dataset {name!r} ({split}) was not found. Either\n"
            f"  1. point ROBUSTBOOK_DATA at a folder holding {' or '.join(files)} "
            f"(keys x_train y_train x_test y_test, uint8 NHWC; tried: {where}), e.g. "
            f"ROBUSTBOOK_DATA=../shared/data, or\n"
            f"  2. connect to the internet so torchvision can download it into {dl_root} "
            f"(set ROBUSTBOOK_DOWNLOAD to change the folder).\n"
            f"torchvision said: {type(err).__name__}: {str(err)[:200]}"
        ) from None


def _torchvision_arrays(name: str, split: str, root: str) -> Tuple[np.ndarray, np.ndarray]:
    import torchvision.datasets as tvd

    train = split == "train"
    if name == "stl10":
        ds = tvd.STL10(root, split=split, download=True)
        return np.asarray(ds.data), np.asarray(ds.labels, dtype=np.int64)  # NCHW already
    cls = {"mnist": tvd.MNIST, "fashion_mnist": tvd.FashionMNIST, "cifar10": tvd.CIFAR10, "cifar100": tvd.CIFAR100}[name]
    ds = cls(root, train=train, download=True)
    data = ds.data.numpy() if isinstance(ds.data, torch.Tensor) else np.asarray(ds.data)
    targets = ds.targets.numpy() if isinstance(ds.targets, torch.Tensor) else np.asarray(ds.targets)
    return data, targets.astype(np.int64)


def to_tensor(images: np.ndarray, shape_chw: Tuple[int, int, int]) -> torch.Tensor:
    """uint8 images (NHW, NHWC or NCHW) -> float32 NCHW in [0,1]."""
    t = torch.from_numpy(np.ascontiguousarray(images))
    if t.dim() == 3:
        t = t.unsqueeze(1)
    elif t.shape[1] != shape_chw[0] and t.shape[-1] == shape_chw[0]:
        t = t.permute(0, 3, 1, 2)
    return t.contiguous().float().div_(255)


def balanced_subset(y: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """Deterministic class-balanced choice of `n` indices (sorted): classes take turns in a
    seeded random order, so each class gets n // C or one more while it has images left."""
    if n > len(y):
        raise ValueError(f"asked for n={n} images but only {len(y)} are available")
    g = device_mod.generator(y.device, seed)
    perm = torch.randperm(len(y), generator=g, device=y.device)
    labels = y[perm]
    order = torch.argsort(labels, stable=True)
    sorted_labels = labels[order]
    starts = torch.searchsorted(sorted_labels, sorted_labels, right=False)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(y)) - starts  # position of each permuted item within its class
    key = rank * (int(y.max()) + 1) + labels
    chosen = perm[torch.argsort(key, stable=True)[:n]]
    return torch.sort(chosen).values


def size(name: str, split: str = "train") -> int:
    """How many images the split has where `load` would read it (no float conversion; raises
    `DatasetNotFound` as `load` does)."""
    _check_name(name, split)
    root = data_dir()
    return len(_load_uint8(name, split, str(root) if root else None, str(download_dir()))[1])


def load(name: str, split: str = "train", n: Optional[int] = None, seed: int = 0) -> Dataset:
    """Load a dataset split as tensors: `x` float32 [0,1] NCHW, `y` int64.

    `n` takes a deterministic class-balanced subset (seeded by `seed`); n=None keeps
    every image the source has. Unpacks as `x, y = load('mnist', 'test')`.
    """
    _check_name(name, split)
    if n is not None and (not isinstance(n, int) or n < 1):
        raise ValueError(f"n must be a positive integer or None, got {n!r}")
    root = data_dir()
    images, labels, source = _load_uint8(name, split, str(root) if root else None, str(download_dir()))
    _, num_classes, official, shape = DATASETS[name]
    y = torch.from_numpy(labels)
    idx = None
    if n is not None and n < len(y):
        idx = balanced_subset(y, n, seed)
        images, y = images[idx.numpy()], y[idx]
    elif n is not None and n > len(y):
        raise ValueError(
            f"{name} {split}: asked for n={n} but the source {source} holds only {len(y)} images"
        )
    x = to_tensor(images, shape)
    return Dataset(
        x=x,
        y=y,
        name=name,
        split=split,
        source=source,
        available=len(labels),
        official=official[SPLITS.index(split)],
        num_classes=num_classes,
        indices=idx,
    )


def batches(
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    shuffle: bool = True,
    augment: str = "none",
    padding: int = 4,
    generator: Optional[torch.Generator] = None,
    drop_last: bool = False,
) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
    """Yield (x_batch, y_batch) from tensors already in memory, shuffled and augmented
    with `generator` (random crop with zero padding and horizontal flip, see
    `transforms.augment`). No DataLoader workers: the data is already a tensor."""
    if len(x) != len(y):
        raise ValueError(f"x and y differ in length: {len(x)} vs {len(y)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = len(y)
    # drawn where the generator lives (a CUDA generator for CUDA data: no host round trip)
    order = torch.randperm(n, generator=generator, device=device_mod.rng_device(generator)) if shuffle \
        else torch.arange(n, device=x.device)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size].to(x.device)
        xb = x.index_select(0, idx)
        yield _augment(xb, augment, padding, generator), y.index_select(0, idx)
