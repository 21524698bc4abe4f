"""Image transforms used by the papers, on batched tensors (float in [0,1], NCHW).

Every function works on a whole batch at once (no per-image Python loop) and
draws its randomness from an optional `torch.Generator`, so a seeded run
reproduces the same augmentation.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .device import rng_device

__all__ = [
    "random_crop",
    "random_flip",
    "augment",
    "to_size",
    "shift",
    "SHIFTS",
    "SHIFT_FILLS",
    "rbs",
    "brightness",
    "gamma",
]

AUGMENTS = ("none", "flip", "crop_flip")
SHIFTS = ("left", "right", "up", "down")
SHIFT_FILLS = ("zero", "wrap")


def _check_batch(x: torch.Tensor, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a 4-d NCHW image batch, got {shape}")


def _randint(high: int, size: int, generator: Optional[torch.Generator], device) -> torch.Tensor:
    return torch.randint(0, high, (size,), generator=generator, device=rng_device(generator)).to(device)


def random_crop(x: torch.Tensor, padding: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Random crop of the original size from the zero-padded image, one offset per image
    (the usual CIFAR augmentation: padding 4 in Madry's code, 2 in AELF appendix C)."""
    _check_batch(x)
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    if padding == 0:
        return x
    b, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    oy = _randint(2 * padding + 1, b, generator, x.device)
    ox = _randint(2 * padding + 1, b, generator, x.device)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # B,1,H,1
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # B,1,1,W
    bi = torch.arange(b, device=x.device)[:, None, None, None]
    ci = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[bi, ci, rows, cols]


def random_flip(x: torch.Tensor, generator: Optional[torch.Generator] = None, p: float = 0.5) -> torch.Tensor:
    """Horizontal flip of each image with probability p."""
    _check_batch(x)
    flip = (torch.rand(x.shape[0], generator=generator, device=rng_device(generator)) < p).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def augment(x: torch.Tensor, kind: str, padding: int = 4, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Training augmentation by name: 'none', 'flip', or 'crop_flip'."""
    if kind not in AUGMENTS:
        raise ValueError(f"unknown augmentation {kind!r}; choose one of {list(AUGMENTS)}")
    if kind == "none":
        return x
    if kind == "crop_flip":
        x = random_crop(x, padding, generator)
    return random_flip(x, generator)


def to_size(x: torch.Tensor, size: int, mode: str = "resize") -> torch.Tensor:
    """Bring images to `size` x `size`: 'resize' (bilinear; AELF appendix C "resized as 32*32")
    or 'pad' (zero padding around the centre, which keeps MNIST pixels exact)."""
    _check_batch(x)
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    if mode == "resize":
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp_(0, 1)
    if mode == "pad":
        if size < h or size < w:
            raise ValueError(f"cannot pad {h}x{w} images down to {size}")
        top, left = (size - h) // 2, (size - w) // 2
        return F.pad(x, (left, size - w - left, top, size - h - top))
    raise ValueError(f"unknown mode {mode!r}; choose 'resize' or 'pad'")


def shift(x: torch.Tensor, direction: str, pixels: int = 8, fill: str = "zero") -> torch.Tensor:
    """Translate the content by `pixels` towards `direction` (AELF Fig. 3: the four shifted
    MNIST test sets, 8 of 32 pixels). `fill`: 'zero' (our reading of the paper: what leaves the
    frame is lost, the vacated strip is black) or 'wrap' (`torch.roll`: what leaves one edge
    comes back at the other, nothing of the digit is lost)."""
    _check_batch(x)
    if direction not in SHIFTS:
        raise ValueError(f"unknown shift direction {direction!r}; choose one of {list(SHIFTS)}")
    if fill not in SHIFT_FILLS:
        raise ValueError(f"unknown shift fill {fill!r}; choose one of {list(SHIFT_FILLS)}")
    h, w = x.shape[-2:]
    if not 0 <= pixels <= min(h, w):
        raise ValueError(f"pixels must be in [0, {min(h, w)}], got {pixels}")
    p = pixels
    if p == 0:
        return x.clone()
    if fill == "wrap":
        sign = -1 if direction in ("left", "up") else 1
        return torch.roll(x, sign * p, dims=-1 if direction in ("left", "right") else -2)
    out = torch.zeros_like(x)
    if direction == "left":
        out[..., :, : w - p] = x[..., :, p:]
    elif direction == "right":
        out[..., :, p:] = x[..., :, : w - p]
    elif direction == "up":
        out[..., : h - p, :] = x[..., p:, :]
    else:
        out[..., p:, :] = x[..., : h - p, :]
    return out


def _block_perm(n: int, k: int, generator: Optional[torch.Generator]) -> torch.Tensor:
    """Index permutation of length n that shuffles k contiguous blocks (sizes differ by <= 1)."""
    bounds = torch.linspace(0, n, k + 1).round().long()
    order = torch.randperm(k, generator=generator, device=rng_device(generator))
    return torch.cat([torch.arange(int(bounds[i]), int(bounds[i + 1])) for i in order.tolist()])


def _strip_perm(n: int, k: int, generator: Optional[torch.Generator]) -> torch.Tensor:
    """Index permutation of length n of the official RLFAT RBS along one axis
    (JHL-HUST/RLFAT ``utils.rbs_transformation``): k-1 cut points c ~ U{0..n-1},
    sorted (repeats and a cut at 0 give empty strips), and the k strips put in a
    uniformly random order (``random.shuffle``)."""
    cuts = torch.randint(0, n, (k - 1,), generator=generator, device=rng_device(generator)).sort().values.tolist()
    bounds = [0, *cuts, n]
    order = torch.randperm(k, generator=generator, device=rng_device(generator)).tolist()
    return torch.cat([torch.arange(bounds[i], bounds[i + 1]) for i in order])


def rbs(x: torch.Tensor, k: int = 2, generator: Optional[torch.Generator] = None, mode: str = "official") -> torch.Tensor:
    """Random Block Shuffle (RLFAT section 3.1): cut the image into strips along one
    axis and shuffle them, then the same along the other. One draw for the whole batch.

    mode='official' (training default; JHL-HUST/RLFAT ``utils.rbs_transformation(x, k)``):
    per axis, W first and then H, k-1 random cut points c ~ U{0..n-1} (sorted) and the
    k strips in a uniformly random order, a fresh draw per axis. For k = 2 an axis is
    left unchanged with probability 1/2 + 1/(2n) (order kept, or a cut at 0).
    mode='paper': k equal blocks per axis, randomly permuted (RLFAT Fig. 1, k = 3 shown).
    Either way pixels are only moved, never changed.
    """
    _check_batch(x)
    if mode not in ("official", "paper"):
        raise ValueError(f"unknown RBS mode {mode!r}; choose 'official' or 'paper'")
    h, w = x.shape[-2:]
    if not 1 <= k <= min(h, w):
        raise ValueError(f"RBS k must be in [1, {min(h, w)}], got {k}")
    if mode == "official":
        cols = _strip_perm(w, k, generator).to(x.device)
        rows = _strip_perm(h, k, generator).to(x.device)
        return x.index_select(-1, cols).index_select(-2, rows)
    rows = _block_perm(h, k, generator).to(x.device)
    cols = _block_perm(w, k, generator).to(x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


def brightness(x: torch.Tensor, delta: float) -> torch.Tensor:
    """Shift the HSV value channel by `delta` (clipped to [0,1]), hue and saturation kept
    (RLFAT section 4.3, V(x, alpha)). For fixed H and S the RGB channels scale linearly
    with V, so this is RGB * V'/V, and grey V' where V == 0. Single-channel images: x + delta."""
    _check_batch(x)
    if x.shape[1] == 1:
        return (x + delta).clamp(0, 1)
    if x.shape[1] != 3:
        raise ValueError(f"brightness needs 1 or 3 channels, got {x.shape[1]}")
    v = x.amax(dim=1, keepdim=True)
    v_new = (v + delta).clamp(0, 1)
    scaled = x * (v_new / v.clamp_min(1e-12))
    return torch.where(v > 0, scaled, v_new.expand_as(x)).clamp(0, 1)


def gamma(x: torch.Tensor, g: float) -> torch.Tensor:
    """Gamma mapping x -> x ** g (RLFAT section 4.3, eq. 12)."""
    if g <= 0:
        raise ValueError(f"gamma must be > 0, got {g}")
    return x.clamp(0, 1).pow(g)
