"""Wide ResNet (Zagoruyko & Komodakis, BMVC 2016), WRN-depth-widen.

Used by AELF sec. 4.3: WRN-40 with dropout 0.2 on CIFAR-10 (Table 4,
following Yang et al. 2020) and WRN-28(-10) on CIFAR-100 (Table 5), each
with ReLU and with LeakyReLU ("ST" vs "ST*"); and as the common WRN-28-10 /
WRN-40-2 (RLFAT names WRN-40-2 for STL-10).
"""

from __future__ import annotations

import torch
from torch import nn

from .base import (PerImageStandardize, RobustModel, check_choice, check_float,
                   check_int)
from .registry import register

__all__ = ["WideResNet", "BasicBlock", "wrn"]

ACTIVATIONS = ("relu", "leaky_relu")


def _act(kind: str, negative_slope: float) -> nn.Module:
    return nn.ReLU() if kind == "relu" else nn.LeakyReLU(negative_slope)


class BasicBlock(nn.Module):
    """Pre-activation wide basic block (Zagoruyko & Komodakis sec. 2,
    "B(3,3)" with dropout between the convs):
    ``BN act conv3x3(stride) BN act dropout conv3x3``.  When the shape changes
    the shortcut is a 1x1 conv (stride) applied to the *activated* input, as in
    the authors' code; otherwise identity on the raw input.
    """

    def __init__(self, cin: int, cout: int, stride: int, dropout: float,
                 activation: str, negative_slope: float):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.act1 = _act(activation, negative_slope)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act2 = _act(activation, negative_slope)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.shortcut = (nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
                         if (cin != cout or stride != 1) else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.act1(self.bn1(x))
        y = self.conv1(o)
        y = self.conv2(self.dropout(self.act2(self.bn2(y))))
        return y + (x if self.shortcut is None else self.shortcut(o))


class WideResNet(RobustModel):
    """WRN-depth-widen: conv3x3 -> 16, three groups of n = (depth-4)/6 basic
    blocks with widths 16k, 32k, 64k and strides 1, 2, 2, final BN + act +
    global average pooling (= ``features``, 64k-d), ``head`` = Linear.

    * No input normalization by default (the papers feed [0, 1] images; AELF
      appendix C, RLFAT sec. 5); ``standardize=True`` adds Madry-style
      per-image standardization in front.
    * ``activation``: 'relu' or 'leaky_relu' (AELF sec. 4.3 runs both; slope
      ``negative_slope``, default 0.1, unspecified in the paper).
    * Init: convs He-normal with fan-out, BN scale 1 / shift 0, head weights
      torch default with zero bias (common PyTorch WRN ports).
    """

    def __init__(self, num_classes: int = 10, depth: int = 28, widen: int = 10,
                 dropout: float = 0.0, activation: str = "relu",
                 negative_slope: float = 0.1, in_channels: int = 3,
                 standardize: bool = False):
        super().__init__()
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.depth, self.widen = depth, widen
        self.standardize = PerImageStandardize() if standardize else nn.Identity()
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        groups = []
        for g, stride in enumerate((1, 2, 2)):
            blocks = [BasicBlock(widths[g] if i == 0 else widths[g + 1], widths[g + 1],
                                 stride if i == 0 else 1, dropout, activation, negative_slope)
                      for i in range(n)]
            groups.append(nn.Sequential(*blocks))
        self.groups = nn.Sequential(*groups)
        self.bn = nn.BatchNorm2d(widths[3])
        self.act = _act(activation, negative_slope)
        self.head = nn.Linear(widths[3], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.head.bias)

    def local_features(self, x: torch.Tensor) -> torch.Tensor:
        """Final post-BN+act map (B, 64k, H/4, W/4)."""
        x = self.conv1(self.standardize(x))
        return self.act(self.bn(self.groups(x)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.local_features(x).mean(dim=(2, 3))


def _check_kw(depth, widen, dropout, activation, negative_slope, in_channels, standardize) -> None:
    """Validate `wrn`'s keyword values without building it."""
    check_int("depth", depth, minimum=10)
    if (depth - 4) % 6:
        raise ValueError(f"depth must be 6n+4 (10, 16, 22, 28, 34, 40, ...), got {depth}")
    check_int("widen", widen, minimum=1)
    check_float("dropout", dropout, minimum=0.0, maximum=1.0)
    check_choice("activation", activation, ACTIVATIONS)
    check_float("negative_slope", negative_slope, minimum=0.0)
    check_int("in_channels", in_channels, minimum=1)
    if not isinstance(standardize, bool):
        raise ValueError(f"standardize must be a bool, got {standardize!r}")


@register("wrn", check=_check_kw)
def wrn(num_classes: int, *, depth: int = 28, widen: int = 10, dropout: float = 0.0,
        activation: str = "relu", negative_slope: float = 0.1, in_channels: int = 3,
        standardize: bool = False) -> WideResNet:
    """Wide ResNet WRN-``depth``-``widen``; ``depth`` = 6n+4 (e.g. 16, 28, 40)."""
    _check_kw(depth, widen, dropout, activation, negative_slope, in_channels, standardize)
    return WideResNet(num_classes, depth=depth, widen=widen, dropout=dropout,
                      activation=activation, negative_slope=negative_slope,
                      in_channels=in_channels, standardize=standardize)
