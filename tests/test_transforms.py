import colorsys

import pytest
import torch

from robustbook import transforms as T


def _img(b=2, c=3, h=8, w=8, seed=0):
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("mode,k", [("official", 2), ("paper", 2), ("paper", 3)])
def test_rbs_permutes_pixels_without_changing_them(mode, k):
    x = _img(h=12, w=12)
    g = torch.Generator().manual_seed(1)
    out = T.rbs(x, k, g, mode=mode)
    assert out.shape == x.shape
    # same multiset of pixel vectors in each image (a permutation of positions) ...
    for i in range(len(x)):
        a = x[i].flatten(1).T.tolist()
        b = out[i].flatten(1).T.tolist()
        assert sorted(map(tuple, a)) == sorted(map(tuple, b))
    # ... and one permutation for the whole batch: image 1 moved like image 0
    pos = torch.arange(144.0).view(1, 1, 12, 12).expand(2, 1, 12, 12)
    moved = T.rbs(pos, k, torch.Generator().manual_seed(1), mode=mode)
    assert torch.equal(moved[0], moved[1])


def _runs(perm):
    """Maximal runs of consecutive indices in a permutation (its contiguous strips)."""
    runs, start = [], 0
    for i in range(1, len(perm) + 1):
        if i == len(perm) or perm[i] != perm[i - 1] + 1:
            runs.append(perm[start:i])
            start = i
    return runs


@pytest.mark.parametrize("n", [8, 32])
def test_rbs_official_k2_leaves_an_axis_unchanged_half_the_time_plus_1_over_2n(n):
    """Official RBS, k = 2: per axis one cut c ~ U{0..n-1} and a random order of the two
    strips, so the axis is unchanged with p = 1/2 + 1/(2n); H and W drawn independently."""
    pos = torch.arange(float(n * n)).view(1, 1, n, n)
    g = torch.Generator().manual_seed(0)
    draws = 3000
    same_w = same_h = same_both = 0
    for _ in range(draws):
        out = T.rbs(pos, 2, g, mode="official")[0, 0]
        cols, rows = (out[0] % n).long().tolist(), (out[:, 0] // n).long().tolist()
        # a strip swap is a rotation: every row moved by the same column permutation
        assert len(_runs(cols)) <= 2 and len(_runs(rows)) <= 2
        assert torch.equal(out, pos[0, 0][rows][:, cols])
        sw, sh = cols == list(range(n)), rows == list(range(n))
        same_w += sw
        same_h += sh
        same_both += sw and sh
    p = 0.5 + 1 / (2 * n)
    tol = 4 * (p * (1 - p) / draws) ** 0.5  # 4 standard errors: a false failure ~6e-5
    assert abs(same_w / draws - p) < tol
    assert abs(same_h / draws - p) < tol
    assert abs(same_both / draws - p * p) < 4 * (p * p * (1 - p * p) / draws) ** 0.5


def test_rbs_official_honours_k():
    """k = 3: up to three strips per axis (two cuts), in any of the 3! orders."""
    n = 12
    pos = torch.arange(float(n * n)).view(1, 1, n, n)
    g = torch.Generator().manual_seed(3)
    n_strips = set()
    for _ in range(400):
        out = T.rbs(pos, 3, g, mode="official")[0, 0]
        cols = (out[0] % n).long().tolist()
        assert sorted(cols) == list(range(n))
        n_strips.add(len(_runs(cols)))
    assert max(n_strips) == 3 and 1 in n_strips
    with pytest.raises(ValueError, match="k must be"):
        T.rbs(pos, 13, g, mode="official")


def test_rbs_paper_blocks_stay_contiguous():
    x = torch.arange(6.0).view(1, 1, 6, 1).expand(1, 1, 6, 6).contiguous()
    seen = set()
    for s in range(20):
        rows = T.rbs(x, 3, torch.Generator().manual_seed(s), mode="paper")[0, 0, :, 0].tolist()
        blocks = [tuple(rows[i : i + 2]) for i in (0, 2, 4)]
        assert sorted(blocks) == [(0, 1), (2, 3), (4, 5)]
        seen.add(tuple(blocks))
    assert len(seen) > 1
    with pytest.raises(ValueError, match="mode"):
        T.rbs(x, 2, mode="random")


def test_shift_moves_content_and_fills_zero():
    x = torch.zeros(1, 1, 32, 32)
    x[0, 0, 10, 20] = 1.0
    assert T.shift(x, "left", 8)[0, 0, 10, 12] == 1
    assert T.shift(x, "right", 8)[0, 0, 10, 28] == 1
    assert T.shift(x, "up", 8)[0, 0, 2, 20] == 1
    assert T.shift(x, "down", 8)[0, 0, 18, 20] == 1
    assert T.shift(x, "right", 12).sum() == 0  # pushed out of the frame
    with pytest.raises(ValueError, match="direction"):
        T.shift(x, "north")


def test_shift_wrap_rolls_and_loses_nothing():
    x = _img(b=2, h=32, w=32, seed=3)
    for d, shifts, dim in (("left", -5, -1), ("right", 5, -1), ("up", -5, -2), ("down", 5, -2)):
        out = T.shift(x, d, 5, fill="wrap")
        assert torch.equal(out, torch.roll(x, shifts, dims=dim))
        # a permutation of the pixels: the same values, nothing lost, unlike the zero fill
        assert torch.equal(out.flatten(1).sort(1).values, x.flatten(1).sort(1).values)
        assert not torch.equal(T.shift(x, d, 5).flatten(1).sort(1).values, x.flatten(1).sort(1).values)
    assert torch.equal(T.shift(x, "up", 0, fill="wrap"), x)
    with pytest.raises(ValueError, match="fill"):
        T.shift(x, "up", 4, fill="reflect")


def test_brightness_matches_colorsys_hsv():
    x = _img(b=1, h=3, w=3, seed=2)
    for delta in (-0.15, 0.15):
        out = T.brightness(x, delta)
        for i in range(3):
            for j in range(3):
                h, s, v = colorsys.rgb_to_hsv(*x[0, :, i, j].tolist())
                ref = colorsys.hsv_to_rgb(h, s, min(max(v + delta, 0.0), 1.0))
                assert torch.allclose(out[0, :, i, j], torch.tensor(ref), atol=1e-6)
    black = torch.zeros(1, 3, 1, 1)
    assert torch.allclose(T.brightness(black, 0.2), torch.full((1, 3, 1, 1), 0.2))


def test_gamma_and_sizes():
    x = _img()
    assert torch.allclose(T.gamma(x, 1.2), x ** 1.2)
    with pytest.raises(ValueError):
        T.gamma(x, 0)
    m = torch.rand(2, 1, 28, 28)
    assert T.to_size(m, 32).shape == (2, 1, 32, 32)
    padded = T.to_size(m, 32, mode="pad")
    assert torch.equal(padded[..., 2:30, 2:30], m) and torch.isclose(padded.sum(), m.sum())


def test_augment_crop_flip_seeded():
    x = _img(b=16, h=8, w=8)
    a = T.augment(x, "crop_flip", 2, torch.Generator().manual_seed(5))
    b = T.augment(x, "crop_flip", 2, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.shape == x.shape and not torch.equal(a, x)
    f = T.random_flip(x, torch.Generator().manual_seed(0), p=1.0)
    assert torch.equal(f, x.flip(3))
    # crop with an offset equal to the padding is the identity
    crop = T.random_crop(x, 0)
    assert torch.equal(crop, x)
    with pytest.raises(ValueError, match="augmentation"):
        T.augment(x, "mixup")
