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


def test_rbs_official_is_two_strip_swaps():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    g = torch.Generator().manual_seed(0)
    out = T.rbs(x, generator=g)
    g = torch.Generator().manual_seed(0)
    ch, cw = int(torch.randint(0, 4, (1,), generator=g)), int(torch.randint(0, 4, (1,), generator=g))
    assert torch.equal(out, torch.roll(x, shifts=(-ch, -cw), dims=(2, 3)))


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
