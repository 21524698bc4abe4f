"""CNN_B, the "basic CNN model" of AELF (Table 1; readable in the
``002_*`` extraction of the paper).

Table 1, column by column::

    layer        1    2    3    4    5    6
    Conv(3x3)    64   64   128  256  512  -
    FC           -    -    -    -    -    512 x 64
    BatchNorm    yes  yes  yes  yes  yes  -
    LeakyReLU    yes  yes  yes  yes  yes  -
    Avg pooling  -    2x2  2x2  2x2  4x4  -

AELF trains it on MNIST resized to 32x32 (appendix C) and on CIFAR-10
(section 4.2), hence ``in_channels`` 1 or 3 and a fixed 32x32 input:
32 -> 16 -> 8 -> 4 after the three 2x2 poolings, and the 4x4 pooling after
conv 5 leaves a 1x1x512 map, i.e. the 512-d input of the "FC 512 x 64".
"""

from __future__ import annotations

import torch
from torch import nn

from .base import RobustModel, check_float, check_int, check_spatial
from .registry import register

__all__ = ["CNNB", "cnn_b"]

_WIDTHS = (64, 64, 128, 256, 512)          # Table 1, row "Conv(3x3)"
_POOLS = (None, 2, 2, 2, 4)                # Table 1, row "Pooling (Average)"


class CNNB(RobustModel):
    """AELF Table 1 CNN_B for 32x32 inputs.

    Readings we had to choose (the table leaves them open):

    * "FC 512 x 64" has no activation ('-' in the BN/LeakyReLU rows of
      column 6).  Default (``embed_dim=64``): ``features`` = output of
      ``Linear(512, 64)`` with no activation (AELF's embedding f_x, sec. 3),
      ``head = Linear(64, num_classes)``.  ``embed_dim=None``: the table's FC
      *is* the classifier input, ``features`` = the 512-d pooled vector and
      ``head = Linear(512, num_classes)``.
    * LeakyReLU slope: the paper gives none; we use 0.1 (``negative_slope``),
      the value of Madry's CIFAR ResNet that the other papers build on.
    * 3x3 convs with padding 1 and no bias (each is followed by BatchNorm,
      which makes a bias redundant).
    * Init: torch defaults.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3,
                 embed_dim: int | None = 64, negative_slope: float = 0.1):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for width, pool in zip(_WIDTHS, _POOLS):
            layers += [nn.Conv2d(c, width, 3, padding=1, bias=False),
                       nn.BatchNorm2d(width),
                       nn.LeakyReLU(negative_slope)]
            if pool is not None:
                layers.append(nn.AvgPool2d(pool))
            c = width
        layers.append(nn.Flatten(1))
        self.body = nn.Sequential(*layers)
        self.embed = nn.Linear(c, embed_dim) if embed_dim is not None else nn.Identity()
        self.head = nn.Linear(embed_dim if embed_dim is not None else c, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        check_spatial(x, (32, 32), "cnn_b")
        return self.embed(self.body(x))


def _check_kw(in_channels, embed_dim, negative_slope) -> None:
    """Validate `cnn_b`'s keyword values without building it."""
    check_int("in_channels", in_channels, minimum=1)
    if embed_dim is not None:
        check_int("embed_dim", embed_dim, minimum=1)
    check_float("negative_slope", negative_slope, minimum=0.0)


@register("cnn_b", check=_check_kw)
def cnn_b(num_classes: int, *, in_channels: int = 3, embed_dim: int | None = 64,
          negative_slope: float = 0.1) -> CNNB:
    """AELF Table 1 CNN_B; ``in_channels`` 1 (MNIST at 32x32) or 3 (CIFAR)."""
    _check_kw(in_channels, embed_dim, negative_slope)
    return CNNB(num_classes, in_channels=in_channels, embed_dim=embed_dim,
                negative_slope=negative_slope)
