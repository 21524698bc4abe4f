"""Madry et al.'s CIFAR ResNet (MadryLab/cifar10_challenge ``model.py``) and
FP&R's attention variant of it.

Used by
* FP&R sec. 4.2 / 4.4 (CIFAR-10/100): "the original ResNet model that has four
  residual blocks with [16, 16, 32, 64] filters and its 3-times wider variant
  with [16, 48, 96, 192] filters" (aliases ``'narrow'`` and ``'wide3'``);
  with ``attention='nonlinear'`` (sec. 3.2, 4.2) or ``'linear'`` (Jetley et
  al. 2018; IJCAI version's comparison);
* RLFAT sec. 5 "wide ResNet w32-10" on CIFAR-10/100 = this network with
  filters [16, 160, 320, 640] (``'w32-10'``), and on STL-10 (96x96) the
  official code's [16, 32, 64, 128] with 6 units per stage (``'stl10'``;
  the paper text calls it "wide ResNet 40-2"; see papers/INDEX.md).

Architecture (from Madry's ``model.py``; the papers only name it):
per-image standardization; init conv 3x3 -> filters[0]; three stages of
``units_per_stage`` pre-activation residual units, strides 1, 2, 2, widths
filters[1], filters[2], filters[3]; final BN + leaky ReLU 0.1 + global
average pooling (= ``features``); ``head`` = Linear(filters[3], classes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .attention import ATTENTION_KINDS, AttentionPool
from .base import PerImageStandardize, RobustModel, check_choice, check_int
from .registry import register

__all__ = ["MadryResNet", "ResidualUnit", "FILTER_ALIASES", "madry_resnet"]

#: alias -> (filters, default units_per_stage)
FILTER_ALIASES: dict[str, tuple[tuple[int, int, int, int], int]] = {
    "narrow": ((16, 16, 32, 64), 5),      # Madry "non-wide"; FP&R sec. 4.2
    "wide3": ((16, 48, 96, 192), 5),      # FP&R sec. 4.2, Table 3 (3x wide)
    "w32-10": ((16, 160, 320, 640), 5),   # RLFAT CIFAR-10/100; Madry's default
    "stl10": ((16, 32, 64, 128), 6),      # RLFAT STL-10 (official code)
}

_SLOPE = 0.1          # leaky ReLU slope of Madry's model.py
_BN = dict(eps=1e-3, momentum=0.1)   # TF batch_norm decay 0.9, epsilon 0.001


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, **_BN)


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class ResidualUnit(nn.Module):
    """Pre-activation unit of Madry's ``_residual``:
    ``[BN, act] conv3x3(stride) BN act conv3x3(1)`` plus a shortcut.

    ``activate_before_residual=True`` (first unit of stage 1): BN+act is
    applied before the split, so the shortcut sees the activated tensor;
    otherwise BN+act is on the residual branch only.  Shortcut when the shape
    changes: average pooling with window = stride, then zero channels padded
    symmetrically, (cout - cin)//2 on each side (for an odd difference, which
    Madry's code does not support, the extra channel goes last).
    """

    def __init__(self, cin: int, cout: int, stride: int, activate_before_residual: bool):
        super().__init__()
        self.activate_before_residual = activate_before_residual
        self.bn1 = _bn(cin)
        self.conv1 = _conv3x3(cin, cout, stride)
        self.bn2 = _bn(cout)
        self.conv2 = _conv3x3(cout, cout)
        self.act = nn.LeakyReLU(_SLOPE)
        self.pool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        extra = cout - cin
        self.channel_pad = (extra // 2, extra - extra // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activate_before_residual:
            x = self.act(self.bn1(x))
            shortcut = x
        else:
            shortcut = x
            x = self.act(self.bn1(x))
        x = self.conv1(x)
        x = self.conv2(self.act(self.bn2(x)))
        shortcut = self.pool(shortcut)
        if self.channel_pad != (0, 0):
            shortcut = F.pad(shortcut, (0, 0, 0, 0, *self.channel_pad))
        return x + shortcut


class MadryResNet(RobustModel):
    """Madry's CIFAR ResNet, optionally with FP&R's attention pooling.

    * Input: [0, 1] images; with ``standardize=True`` (default) per-image
      standardization inside (Madry's cifar10_challenge ``model.py``:
      ``tf.image.per_image_standardization``; FP&R builds on it). The official
      RLFAT ``model_bn.py`` feeds the [0, 1] image as it is:
      ``standardize=False`` (every RLFAT preset).
    * Leaky ReLU 0.1; convs without bias; BN eps 1e-3, momentum 0.1 (TF
      decay 0.9); all from Madry's ``model.py``.
    * Init as the original: convs He-normal with fan-out
      (std sqrt(2 / (9 * out_channels))), head uniform(+-sqrt(3 / in)) with zero
      bias (TF ``uniform_unit_scaling``), BN scale 1 / shift 0.
    * Convs use torch's symmetric padding 1; TF's 'SAME' pads stride-2 convs
      on the bottom/right only (a one-pixel shift of the sampling grid; it
      matters only when porting TF checkpoints).
    * ``attention=None``: ``features`` = global average pool of the final
      BN+act map (filters[3]-d).  ``'nonlinear'``/``'linear'``: FP&R
      sec. 3.2 -- ``features`` = h = sum_n w_n l_n over that map
      (:class:`~robustbook.models.attention.AttentionPool`).
    """

    def __init__(self, num_classes: int = 10, filters: Sequence[int] = (16, 16, 32, 64),
                 units_per_stage: int = 5, in_channels: int = 3,
                 attention: str | None = None, standardize: bool = True):
        super().__init__()
        f = tuple(filters)
        self.filters = f
        self.units_per_stage = units_per_stage
        self.standardize = PerImageStandardize() if standardize else nn.Identity()
        self.init_conv = _conv3x3(in_channels, f[0])
        stages = []
        for s, stride in enumerate((1, 2, 2)):
            units = [ResidualUnit(f[s], f[s + 1], stride, activate_before_residual=(s == 0))]
            units += [ResidualUnit(f[s + 1], f[s + 1], 1, False)
                      for _ in range(units_per_stage - 1)]
            stages.append(nn.Sequential(*units))
        self.stages = nn.Sequential(*stages)
        self.bn_last = _bn(f[3])
        self.act = nn.LeakyReLU(_SLOPE)
        self.has_attention = attention is not None
        self.attention_kind = attention
        self.attn = (AttentionPool(f[3], attention, negative_slope=_SLOPE)
                     if attention is not None else None)
        self.head = nn.Linear(f[3], num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        bound = math.sqrt(3.0 / self.head.in_features)
        nn.init.uniform_(self.head.weight, -bound, bound)
        nn.init.zeros_(self.head.bias)

    def local_features(self, x: torch.Tensor) -> torch.Tensor:
        """The final post-BN+act map (B, filters[3], H/4, W/4): FP&R's l_n."""
        x = self.init_conv(self.standardize(x))
        x = self.stages(x)
        return self.act(self.bn_last(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        l = self.local_features(x)
        if self.attn is None:
            return l.mean(dim=(2, 3))
        return self.attn(l)[0]

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Attention weights w (B, H, W), summing to 1 per image (FP&R eq. 4)."""
        if self.attn is None:
            raise RuntimeError("this madry_resnet has no attention; "
                               f"build it with attention in {ATTENTION_KINDS}")
        return self.attn(self.local_features(x))[1]


def _resolve_filters(filters, units_per_stage):
    if isinstance(filters, str):
        if filters not in FILTER_ALIASES:
            raise ValueError(f"unknown filters alias {filters!r}; valid aliases: "
                             f"{', '.join(FILTER_ALIASES)} (or a list of 4 ints)")
        f, default_units = FILTER_ALIASES[filters]
    else:
        if not isinstance(filters, Sequence) or len(filters) != 4:
            raise ValueError("filters must be a list of 4 ints or one of the aliases "
                             f"{', '.join(FILTER_ALIASES)}; got {filters!r}")
        f = tuple(check_int(f"filters[{i}]", v, minimum=1) for i, v in enumerate(filters))
        default_units = 5
        for i in range(3):
            if f[i + 1] < f[i]:
                raise ValueError(f"filters must not decrease (the shortcut zero-pads "
                                 f"channels): got {list(f)}")
    units = default_units if units_per_stage is None else units_per_stage
    check_int("units_per_stage", units, minimum=1)
    return f, units


def _check_kw(filters, units_per_stage, in_channels, attention, standardize) -> None:
    """Validate `madry_resnet`'s keyword values without building it."""
    _resolve_filters(filters, units_per_stage)
    check_int("in_channels", in_channels, minimum=1)
    if attention is not None:
        check_choice("attention", attention, (None, *ATTENTION_KINDS))
    if not isinstance(standardize, bool):
        raise ValueError(f"standardize must be a bool, got {standardize!r}")


@register("madry_resnet", check=_check_kw)
def madry_resnet(num_classes: int, *, filters: str | Sequence[int] = "narrow",
                 units_per_stage: int | None = None, in_channels: int = 3,
                 attention: str | None = None, standardize: bool = True) -> MadryResNet:
    """Madry's CIFAR ResNet.

    ``filters``: 4 ints or an alias of :data:`FILTER_ALIASES` ('narrow'
    default, 'wide3', 'w32-10', 'stl10'); ``units_per_stage``: default 5
    (6 for 'stl10'); ``attention``: None, 'nonlinear' or 'linear' (FP&R);
    ``standardize``: per-image standardization of the input (True: Madry's
    cifar10_challenge, FP&R; False: the official RLFAT ``model_bn.py``).
    """
    _check_kw(filters, units_per_stage, in_channels, attention, standardize)
    f, units = _resolve_filters(filters, units_per_stage)
    return MadryResNet(num_classes, filters=f, units_per_stage=units,
                       in_channels=in_channels, attention=attention, standardize=standardize)
