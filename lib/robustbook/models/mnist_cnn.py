"""Madry et al.'s MNIST CNN (MadryLab/mnist_challenge ``model.py``).

FP&R section 4.1 (MNIST): "a CNN with two convolutional layers with 32 and
64 filters respectively, each followed by 2x2 max-pooling, and a fully
connected layer of size 1024 ... the same as in Madry et al. (2017)".
"""

from __future__ import annotations

import torch
from torch import nn

from .base import RobustModel, check_int, check_spatial
from .registry import register

__all__ = ["MadryMnistCNN", "madry_mnist_cnn"]


class MadryMnistCNN(RobustModel):
    """conv5x5(32, same)+ReLU, maxpool 2 -> conv5x5(64, same)+ReLU, maxpool 2
    -> FC 1024 + ReLU (= ``features``, FP&R's G(x)) -> FC num_classes (= ``head``).

    * Layer sizes: FP&R sec. 4.1 / MadryLab/mnist_challenge.
    * No input normalization (Madry's MNIST model feeds [0, 1] pixels).
    * Init as the original: weights truncated normal (std 0.1, cut at 2 std),
      biases 0.1.
    * ``input_size`` (default 28) sets the FC input: (input_size/4)^2 * 64;
      32 serves MNIST resized to 32x32 as in AELF appendix C.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 28):
        super().__init__()
        self.input_size = input_size
        self.conv1 = nn.Conv2d(in_channels, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
        self.pool = nn.MaxPool2d(2)
        self.act = nn.ReLU()
        side = input_size // 4
        self.fc = nn.Linear(64 * side * side, 1024)
        self.head = nn.Linear(1024, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.1, a=-0.2, b=0.2)
                nn.init.constant_(m.bias, 0.1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        check_spatial(x, (self.input_size, self.input_size), "madry_mnist_cnn")
        x = self.pool(self.act(self.conv1(x)))
        x = self.pool(self.act(self.conv2(x)))
        return self.act(self.fc(torch.flatten(x, 1)))


def _check_kw(input_size, in_channels) -> None:
    """Validate `madry_mnist_cnn`'s keyword values without building it."""
    check_int("input_size", input_size, minimum=4)
    if input_size % 4:
        raise ValueError(f"input_size must be a multiple of 4 (two 2x2 max-pools), got {input_size}")
    check_int("in_channels", in_channels, minimum=1)


@register("madry_mnist_cnn", check=_check_kw)
def madry_mnist_cnn(num_classes: int, *, input_size: int = 28, in_channels: int = 1) -> MadryMnistCNN:
    """Madry's MNIST CNN; ``input_size`` 28 (default) or any multiple of 4 (e.g. 32)."""
    _check_kw(input_size, in_channels)
    return MadryMnistCNN(num_classes, in_channels=in_channels, input_size=input_size)
