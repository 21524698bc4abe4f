"""FP&R's attention module (sections 3.2 and 4.2 of the paper; the IJCAI
version adds the linear-vs-nonlinear comparison, 92.87% vs 91.34%).

Given the local feature map ``l`` (B, C, H, W) -- the output of the last
residual block, N = H*W positions (8x8 = 64 for 32x32 CIFAR inputs) -- it
computes

* the global feature ``g`` (B, C): FP&R sec. 4.2 replaces the spatial global
  average pooling by "a convolutional layer sandwiched between two
  max-pooling layers";
* compatibility scores ``c_n`` (eq. 3): ``'nonlinear'`` -- a one-hidden-layer
  ReLU network with 64 hidden units on ``concat(g, l_n)`` with a scalar output
  (sec. 3.2, 4.2); ``'linear'`` -- Jetley et al. (2018)'s parametrised
  compatibility ``<u, l_n + g>``;
* weights ``w = softmax_n(c)`` (eq. 4) and the descriptor
  ``h = sum_n w_n l_n`` (eq. 5), which replaces ``g`` as classifier input.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import check_choice

__all__ = ["AttentionPool", "ATTENTION_KINDS"]

ATTENTION_KINDS = ("nonlinear", "linear")


class AttentionPool(nn.Module):
    """Attention pooling of a (B, C, H, W) map into a C-d descriptor.

    Global branch (our reading of "a convolutional layer sandwiched between
    two max-pooling layers", FP&R sec. 4.2): ``MaxPool2d(2)`` (8x8 -> 4x4),
    ``Conv2d(C, C, 3, padding=1)`` with bias + LeakyReLU(``negative_slope``),
    then a *global* max pooling (4x4 -> 1x1) as the second max-pooling layer,
    so ``g`` has C dims with no extra layer -- the linear variant needs
    ``g`` and ``l_n`` of the same size.

    ``kind='nonlinear'``: ``c_n = Linear(64, 1)(ReLU(Linear(2C, 64)([g, l_n])))``.
    ``kind='linear'``: ``c_n = <u, l_n + g>`` with a learned ``u`` (no bias;
    a bias would cancel in the softmax).
    """

    def __init__(self, channels: int, kind: str = "nonlinear", hidden: int = 64,
                 negative_slope: float = 0.1):
        super().__init__()
        check_choice("attention", kind, ATTENTION_KINDS)
        self.kind = kind
        self.channels = channels
        self.global_feature = nn.Sequential(
            nn.MaxPool2d(2),
            nn.Conv2d(channels, channels, 3, padding=1, bias=True),
            nn.LeakyReLU(negative_slope),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(1),
        )
        if kind == "nonlinear":
            self.compat = nn.Sequential(
                nn.Linear(2 * channels, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        else:
            self.compat = nn.Linear(channels, 1, bias=False)   # u

    def scores(self, l: torch.Tensor) -> torch.Tensor:
        """Compatibility scores c_n, shaped (B, N) with N = H*W (row-major)."""
        g = self.global_feature(l)                     # (B, C)
        ln = l.flatten(2).transpose(1, 2)              # (B, N, C)
        g = g.unsqueeze(1).expand_as(ln)               # (B, N, C)
        if self.kind == "nonlinear":
            c = self.compat(torch.cat([g, ln], dim=-1))
        else:
            c = self.compat(ln + g)
        return c.squeeze(-1)

    def forward(self, l: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(h, w)``: descriptor (B, C) and weights (B, H, W)."""
        b, _, hgt, wid = l.shape
        w = torch.softmax(self.scores(l), dim=1)                   # (B, N)
        h = torch.bmm(w.unsqueeze(1), l.flatten(2).transpose(1, 2)).squeeze(1)
        return h, w.view(b, hgt, wid)
