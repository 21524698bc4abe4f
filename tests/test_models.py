"""Tests of the model zoo (robustbook.models).

Parameter counts are checked against figures computed by hand below (layer
by layer, from the papers' architecture descriptions), never from the model.
Large widths (w32-10, WRN-28-10) are only counted, on the meta device.
"""

from __future__ import annotations

import pytest
import torch

from robustbook import models as M
from robustbook.models import build

K = 10  # classes used throughout


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def on_meta(name, **kw):
    """Build without allocating memory (for parameter counts only)."""
    with torch.device("meta"):
        return build(name, K, **kw)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# --------------------------------------------------------------------------
# hand-computed parameter counts


def conv(cin, cout, k, bias=False):
    return k * k * cin * cout + (cout if bias else 0)


def bn(c):
    return 2 * c            # scale + shift (running stats are buffers)


def fc(i, o):
    return i * o + o


# Madry MNIST CNN (FP&R sec. 4.1): conv5x5 1->32 (+b), conv5x5 32->64 (+b),
# FC 7*7*64 -> 1024 (+b), FC 1024 -> K (+b)
MNIST_CNN = conv(1, 32, 5, True) + conv(32, 64, 5, True) + fc(7 * 7 * 64, 1024) + fc(1024, K)
assert MNIST_CNN == 832 + 51_264 + 3_212_288 + 10_250 == 3_274_634

# CNN_B (AELF Table 1), 3 input channels: five bias-free 3x3 convs + BN,
# FC 512x64 (+b), head 64 -> K (+b)
_CNNB_BODY = (conv(3, 64, 3) + conv(64, 64, 3) + conv(64, 128, 3) + conv(128, 256, 3)
              + conv(256, 512, 3) + bn(64) + bn(64) + bn(128) + bn(256) + bn(512))
CNN_B = _CNNB_BODY + fc(512, 64) + fc(64, K)
assert CNN_B == 1_586_880 + 2_048 + 32_832 + 650 == 1_622_410
CNN_B_GRAY = CNN_B - conv(2, 64, 3)           # in_channels 1: 2 fewer input planes
CNN_B_NO_EMBED = _CNNB_BODY + fc(512, K)      # embed_dim=None


def madry_unit(cin, cout):
    # BN(cin), conv3x3 cin->cout, BN(cout), conv3x3 cout->cout; the shortcut
    # (avg-pool + zero channel padding) has no parameters
    return bn(cin) + conv(cin, cout, 3) + bn(cout) + conv(cout, cout, 3)


def madry_resnet_count(f, units):
    total = conv(3, f[0], 3)                                   # init conv
    for s in range(3):                                         # 3 stages
        total += madry_unit(f[s], f[s + 1]) + (units - 1) * madry_unit(f[s + 1], f[s + 1])
    return total + bn(f[3]) + fc(f[3], K)                      # final BN, head


MADRY_NARROW = madry_resnet_count([16, 16, 32, 64], 5)
MADRY_WIDE3 = madry_resnet_count([16, 48, 96, 192], 5)
MADRY_W32_10 = madry_resnet_count([16, 160, 320, 640], 5)
MADRY_STL10 = madry_resnet_count([16, 32, 64, 128], 6)
assert (MADRY_NARROW, MADRY_WIDE3, MADRY_W32_10, MADRY_STL10) == (
    464_154, 4_142_490, 45_901_914, 2_232_794)


def attention_extra(c, kind):
    # global branch: conv3x3 c->c with bias (between the two max-pools);
    # nonlinear: Linear(2c, 64) + Linear(64, 1); linear: u in R^c
    g = conv(c, c, 3, bias=True)
    return g + (fc(2 * c, 64) + fc(64, 1) if kind == "nonlinear" else c)


assert attention_extra(64, "nonlinear") == 36_928 + 8_321
assert attention_extra(64, "linear") == 36_928 + 64


def wrn_count(depth, k, cin=3):
    n = (depth - 4) // 6
    w = [16, 16 * k, 32 * k, 64 * k]
    total = conv(cin, 16, 3)
    for g in range(3):
        for i in range(n):
            a, b = (w[g], w[g + 1]) if i == 0 else (w[g + 1], w[g + 1])
            # BN a, conv3x3 a->b, BN b, conv3x3 b->b, 1x1 shortcut conv in the
            # first block of each group (the shape changes there for k > 1 or stride 2)
            total += bn(a) + conv(a, b, 3) + bn(b) + conv(b, b, 3)
            if i == 0 and (a != b or g > 0):
                total += conv(a, b, 1)
    return total + bn(w[3]) + fc(w[3], K)


WRN_28_10 = wrn_count(28, 10)
assert WRN_28_10 == 36_479_194          # the usual "36.5M" of WRN-28-10
WRN_16_2 = wrn_count(16, 2)
WRN_40_2 = wrn_count(40, 2)


@pytest.mark.parametrize("name, kw, expected", [
    ("madry_mnist_cnn", {}, MNIST_CNN),
    ("cnn_b", {}, CNN_B),
    ("cnn_b", {"in_channels": 1}, CNN_B_GRAY),
    ("cnn_b", {"embed_dim": None}, CNN_B_NO_EMBED),
    ("madry_resnet", {"filters": "narrow"}, MADRY_NARROW),
    ("madry_resnet", {"filters": "wide3"}, MADRY_WIDE3),
    ("madry_resnet", {"filters": "w32-10"}, MADRY_W32_10),
    ("madry_resnet", {"filters": [16, 160, 320, 640]}, MADRY_W32_10),
    ("madry_resnet", {"filters": "stl10"}, MADRY_STL10),
    ("madry_resnet", {"attention": "nonlinear"}, MADRY_NARROW + attention_extra(64, "nonlinear")),
    ("madry_resnet", {"attention": "linear"}, MADRY_NARROW + attention_extra(64, "linear")),
    ("madry_resnet", {"filters": "wide3", "attention": "nonlinear"},
     MADRY_WIDE3 + attention_extra(192, "nonlinear")),
    ("wrn", {"depth": 28, "widen": 10}, WRN_28_10),
    ("wrn", {"depth": 40, "widen": 2, "dropout": 0.2}, WRN_40_2),
    ("wrn", {"depth": 16, "widen": 2}, WRN_16_2),
])
def test_parameter_count(name, kw, expected):
    assert n_params(on_meta(name, **kw)) == expected


# --------------------------------------------------------------------------
# forward passes at the papers' input shapes

FORWARD_CASES = [
    ("madry_mnist_cnn", {}, (1, 28, 28)),                       # FP&R sec. 4.1
    ("madry_mnist_cnn", {"input_size": 32}, (1, 32, 32)),
    ("cnn_b", {"in_channels": 1}, (1, 32, 32)),                 # AELF MNIST at 32x32
    ("cnn_b", {}, (3, 32, 32)),                                 # AELF CIFAR-10
    ("cnn_b", {"embed_dim": None}, (3, 32, 32)),
    ("madry_resnet", {"filters": "narrow"}, (3, 32, 32)),       # FP&R CIFAR
    ("madry_resnet", {"filters": "wide3"}, (3, 32, 32)),
    ("madry_resnet", {"filters": "stl10"}, (3, 96, 96)),        # RLFAT STL-10
    ("madry_resnet", {"attention": "nonlinear"}, (3, 32, 32)),  # FP&R AT-att
    ("madry_resnet", {"attention": "linear"}, (3, 32, 32)),
    ("wrn", {"depth": 16, "widen": 2}, (3, 32, 32)),
    ("wrn", {"depth": 10, "widen": 1, "activation": "leaky_relu", "dropout": 0.2}, (3, 32, 32)),
    ("wrn", {"depth": 10, "widen": 1, "standardize": True}, (3, 96, 96)),
]
_ids = [f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for n, kw, _ in FORWARD_CASES]


@pytest.mark.parametrize("name, kw, shape", FORWARD_CASES, ids=_ids)
def test_forward_shape_and_head_of_features(name, kw, shape):
    model = build(name, K, **kw)
    x = torch.rand(2, *shape)
    model.train()
    assert model(x).shape == (2, K)
    model.eval()
    with torch.no_grad():
        logits = model(x)
        feats = model.features(x)
        assert logits.shape == (2, K)
        assert feats.shape == (2, model.head.in_features)
        assert torch.equal(model.head(feats), logits)
    assert isinstance(model.head, torch.nn.Linear)
    assert model.has_attention == (kw.get("attention") is not None)


def test_registry():
    assert M.names() == sorted(["madry_mnist_cnn", "cnn_b", "madry_resnet", "wrn"])
    assert set(M.MODELS) == set(M.names())
    with pytest.raises(ValueError, match="already registered"):
        M.register("cnn_b")(lambda num_classes: None)
    assert M.kwargs_of("cnn_b") == {"in_channels": 3, "embed_dim": 64, "negative_slope": 0.1}


def test_feature_dims():
    assert build("madry_mnist_cnn", K).head.in_features == 1024
    assert build("cnn_b", K).head.in_features == 64
    assert build("cnn_b", K, embed_dim=None).head.in_features == 512
    assert on_meta("madry_resnet", filters="w32-10").head.in_features == 640
    assert on_meta("wrn", depth=28, widen=10).head.in_features == 640


def test_gradient_reaches_input():
    model = build("madry_resnet", K, attention="nonlinear").eval()
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    model(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_madry_unit_shortcut():
    """Madry's _residual: avg-pool(stride) + symmetric zero channel padding;
    with activate_before_residual the shortcut sees BN+act of the input."""
    from robustbook.models.madry_resnet import ResidualUnit
    x = torch.randn(2, 16, 8, 8)
    for abr in (False, True):
        unit = ResidualUnit(16, 32, 2, activate_before_residual=abr).eval()
        torch.nn.init.zeros_(unit.conv2.weight)          # kill the residual branch
        with torch.no_grad():
            out = unit(x)
            src = unit.act(unit.bn1(x)) if abr else x
        assert out.shape == (2, 32, 4, 4)
        torch.testing.assert_close(out[:, 8:24], torch.nn.functional.avg_pool2d(src, 2))
        assert torch.equal(out[:, :8], torch.zeros(2, 8, 4, 4))
        assert torch.equal(out[:, 24:], torch.zeros(2, 8, 4, 4))


# --------------------------------------------------------------------------
# FP&R attention


@pytest.mark.parametrize("kind", ["nonlinear", "linear"])
def test_attention_weights(kind):
    model = build("madry_resnet", K, attention=kind).eval()
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        w = model.attention(x)
        l = model.local_features(x)
        h = model.features(x)
    assert w.shape == (3, 8, 8)                     # N = 64 positions
    assert l.shape == (3, 64, 8, 8)
    assert (w >= 0).all()
    torch.testing.assert_close(w.sum(dim=(1, 2)), torch.ones(3))
    # h = sum_n w_n l_n (FP&R eq. 5)
    torch.testing.assert_close(h, (w.unsqueeze(1) * l).sum(dim=(2, 3)))


def test_attention_variants_differ():
    nonlin = build("madry_resnet", K, attention="nonlinear").eval()
    lin = build("madry_resnet", K, attention="linear").eval()
    # share the trunk and the global branch; only the compatibility differs
    missing, unexpected = lin.load_state_dict(nonlin.state_dict(), strict=False)
    assert all(k.startswith("attn.compat") for k in missing + unexpected)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(nonlin.local_features(x), lin.local_features(x))
        assert not torch.allclose(nonlin.attention(x), lin.attention(x))
    assert isinstance(nonlin.attn.compat, torch.nn.Sequential)
    assert isinstance(lin.attn.compat, torch.nn.Linear) and lin.attn.compat.bias is None
    assert n_params(nonlin) != n_params(lin)


def test_no_attention_flags():
    for name, kw, _ in FORWARD_CASES:
        if "attention" not in kw:
            assert build(name, K, **kw).has_attention is False
    with pytest.raises(RuntimeError, match="no attention"):
        build("madry_resnet", K).attention(torch.rand(1, 3, 32, 32))


# --------------------------------------------------------------------------
# per-image standardization


def test_per_image_standardize_formula():
    x = torch.rand(4, 3, 32, 32)
    z = M.PerImageStandardize()(x)
    torch.testing.assert_close(z.mean(dim=(1, 2, 3)), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std(dim=(1, 2, 3), unbiased=False), torch.ones(4))
    # constant image: std clamps at 1/sqrt(numel), giving zeros, not NaN
    z = M.PerImageStandardize()(torch.full((1, 3, 4, 4), 0.7))
    torch.testing.assert_close(z, torch.zeros(1, 3, 4, 4), atol=1e-5, rtol=0)


@pytest.mark.parametrize("kw", [{}, {"attention": "nonlinear"}])
@pytest.mark.parametrize("a, b", [(2.5, -0.3), (0.5, 0.2)])
def test_madry_resnet_affine_invariance(kw, a, b):
    model = build("madry_resnet", K, **kw).eval()
    x = torch.rand(2, 3, 32, 32)        # std ~0.29 >> 1/sqrt(3072) even at a = 0.5
    with torch.no_grad():
        torch.testing.assert_close(model(a * x + b), model(x), atol=1e-4, rtol=1e-4)


def test_wrn_standardize_option():
    x = torch.rand(2, 3, 32, 32)
    plain = build("wrn", K, depth=10, widen=1).eval()
    std = build("wrn", K, depth=10, widen=1, standardize=True).eval()
    with torch.no_grad():
        torch.testing.assert_close(std(3 * x - 1), std(x), atol=1e-4, rtol=1e-4)
        assert not torch.allclose(plain(3 * x - 1), plain(x), atol=1e-4)


def test_wrn_dropout_active_only_in_train():
    model = build("wrn", K, depth=10, widen=1, dropout=0.5)
    x = torch.rand(2, 3, 32, 32)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


# --------------------------------------------------------------------------
# errors


def test_unknown_name():
    with pytest.raises(ValueError, match=r"unknown model 'resnet50'.*cnn_b.*madry_mnist_cnn"):
        build("resnet50", K)


def test_unknown_kwarg_lists_valid_ones():
    with pytest.raises(ValueError, match=r"'width'.*'wrn'.*depth=28.*widen=10"):
        build("wrn", K, width=10)


@pytest.mark.parametrize("name, num_classes, kw, msg", [
    ("cnn_b", 1, {}, "num_classes"),
    ("cnn_b", 10.0, {}, "num_classes"),
    ("cnn_b", True, {}, "num_classes"),
    ("cnn_b", K, {"embed_dim": 0}, "embed_dim"),
    ("madry_mnist_cnn", K, {"input_size": 30}, "multiple of 4"),
    ("madry_resnet", K, {"filters": "wide"}, r"narrow, wide3, w32-10, stl10"),
    ("madry_resnet", K, {"filters": [16, 32, 64]}, "list of 4 ints"),
    ("madry_resnet", K, {"filters": [16, 64, 32, 128]}, "must not decrease"),
    ("madry_resnet", K, {"units_per_stage": 0}, "units_per_stage"),
    ("madry_resnet", K, {"attention": "soft"}, r"nonlinear.*linear"),
    ("wrn", K, {"depth": 27}, "6n\\+4"),
    ("wrn", K, {"activation": "gelu"}, "relu.*leaky_relu"),
    ("wrn", K, {"dropout": 1.5}, "dropout"),
])
def test_bad_arguments(name, num_classes, kw, msg):
    with pytest.raises(ValueError, match=msg):
        build(name, num_classes, **kw)


def test_wrong_input_shape_is_readable():
    with pytest.raises(ValueError, match=r"\(B, C, 32, 32\)"):
        build("cnn_b", K)(torch.rand(1, 3, 28, 28))
    with pytest.raises(ValueError, match=r"\(B, C, 28, 28\)"):
        build("madry_mnist_cnn", K)(torch.rand(1, 1, 32, 32))
