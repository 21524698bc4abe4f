"""Shared pieces of the model zoo: the common interface, validation helpers
and per-image standardization.

Every model in :mod:`robustbook.models` is a :class:`RobustModel`:

* input: float images in [0, 1], NCHW (any normalization lives inside);
* ``features(x)``: the descriptor fed to the last linear layer (FP&R's
  G(x), section 3.3; AELF's embedding f_x, section 3);
* ``head``: that last ``nn.Linear``; ``forward(x)`` is *defined* as
  ``head(features(x))``, so the two agree exactly;
* ``has_attention``: True only for FP&R's attention variants.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

__all__ = [
    "RobustModel",
    "PerImageStandardize",
    "check_int",
    "check_num_classes",
    "check_choice",
    "check_float",
]


class RobustModel(nn.Module):
    """Base class: ``forward(x) == head(features(x))`` by construction."""

    has_attention: bool = False
    head: nn.Linear

    def features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @property
    def feature_dim(self) -> int:
        """Width of ``features(x)`` (= ``head.in_features``)."""
        return self.head.in_features


class PerImageStandardize(nn.Module):
    """``(x - mean) / max(std, 1/sqrt(numel))`` per image, over C, H and W.

    Same formula as ``tf.image.per_image_standardization`` (population std),
    which Madry's CIFAR model applies to its input
    (MadryLab/cifar10_challenge ``model.py``).  For images whose std exceeds
    ``1/sqrt(numel)`` the output is invariant to ``x -> a*x + b`` (a > 0).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x[0].numel()
        dims = tuple(range(1, x.dim()))
        mean = x.mean(dim=dims, keepdim=True)
        std = x.std(dim=dims, keepdim=True, unbiased=False)
        return (x - mean) / std.clamp_min(1.0 / math.sqrt(n))


# --------------------------------------------------------------------------
# validation helpers: every bad argument becomes a ValueError that names it


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_int(name: str, value, *, minimum: int | None = None) -> int:
    if not _is_int(value):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return value


def check_num_classes(num_classes) -> int:
    return check_int("num_classes", num_classes, minimum=2)


def check_float(name: str, value, *, minimum: float | None = None,
                maximum: float | None = None, closed_max: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    if maximum is not None and (value > maximum or (value == maximum and not closed_max)):
        op = "<=" if closed_max else "<"
        raise ValueError(f"{name} must be {op} {maximum}, got {value!r}")
    return value


def check_choice(name: str, value, choices: Iterable):
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices!r}, got {value!r}")
    return value


def check_spatial(x: torch.Tensor, expected: tuple[int, int], model: str) -> None:
    """Raise a readable ValueError when the input has the wrong shape."""
    if x.dim() != 4 or tuple(x.shape[-2:]) != tuple(expected):
        raise ValueError(
            f"{model} expects input of shape (B, C, {expected[0]}, {expected[1]}), "
            f"got {tuple(x.shape)}"
        )
