"""Tests of robustbook.methods: every loss against its formula computed by hand,
gradient routing (AELF), the frozen head (AELFs), descent on real MNIST, and
the per-method config checks."""

from __future__ import annotations

import math
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

import robustbook.methods as M
from robustbook.config import ConfigError, RunConfig

ALL = [
    "st", "pgd_at", "at_reg", "at_att", "at_att_reg", "alp", "jt", "trades", "jt_star",
    "aelfs", "aelf", "rbsat_pgd", "rlfat_p", "rbsat_trades", "rlfat_t",
]


# --------------------------------------------------------------------------
# a tiny model with features/head, and hand-computed forward passes


class Tiny(nn.Module):
    """x (B,1,2,3) -> tanh(Linear(6,4)) = features -> Linear(4,3) = head."""

    def __init__(self, has_attention=False, bn=False):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.body = nn.Linear(6, 4)
        self.head = nn.Linear(4, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
        self.bn = nn.BatchNorm1d(4) if bn else None
        self.has_attention = has_attention
        self.feature_calls = 0

    def features(self, x):
        self.feature_calls += 1
        h = self.body(x.flatten(1))
        if self.bn is not None:
            h = self.bn(h)
        return torch.tanh(h)

    def forward(self, x):
        return self.head(self.features(x))


def hand_features(m, x):
    m = SimpleNamespace(body=SimpleNamespace(weight=m.body.weight.detach(), bias=m.body.bias.detach()))
    rows = []
    for xi in x:
        v = xi.reshape(-1)
        rows.append([math.tanh(float(sum(m.body.weight[j, k] * v[k] for k in range(6)) + m.body.bias[j]))
                     for j in range(4)])
    return rows


def hand_logits(m, feats):
    m = SimpleNamespace(head=SimpleNamespace(weight=m.head.weight.detach(), bias=m.head.bias.detach()))
    return [[float(sum(m.head.weight[c, j] * f[j] for j in range(4)) + m.head.bias[c]) for c in range(3)]
            for f in feats]


def log_softmax_row(z):
    mx = max(z)
    lse = mx + math.log(sum(math.exp(v - mx) for v in z))
    return [v - lse for v in z]


def hand_ce(logits, labels):
    return sum(-log_softmax_row(z)[y] for z, y in zip(logits, labels)) / len(labels)


def hand_kl(zp, zq):
    tot = 0.0
    for a, b in zip(zp, zq):
        lp, lq = log_softmax_row(a), log_softmax_row(b)
        tot += sum(math.exp(u) * (u - v) for u, v in zip(lp, lq))
    return tot / len(zp)


def hand_dist(a, b, squared):
    tot = 0.0
    for u, v in zip(a, b):
        s = sum((p - q) ** 2 for p, q in zip(u, v))
        tot += s if squared else math.sqrt(s)
    return tot / len(a)


def hand_norm(a):
    return sum(math.sqrt(sum(p * p for p in u)) for u in a) / len(a)


def fake_adv(x):
    """The 'attack' used in the hand tests: a known deterministic map."""
    return (0.7 * x + 0.3 * (1 - x)).clamp(0, 1)


def fake_rbs(x):
    """A fixed 'RBS': reverse the width axis, then roll the height axis."""
    return torch.roll(x.flip(-1), 1, dims=-2)


def cfg_ns(**kw):
    base = dict(eps=0.1, alpha=0.05, steps=3, random_start=True, attack_bn_train=False, lam=0.7, beta=0.9,
                eta=0.4, ratio=(0.3, 0.7), adv_fraction=0.5, rbs_k=2, rbs_mode="official")
    base.update(kw)
    return SimpleNamespace(**base)


@pytest.fixture
def patched(monkeypatch):
    calls = {"pgd": [], "rbs": []}

    def pgd(model, x, y, **kw):
        calls["pgd"].append(dict(kw, n=len(x), x=x.clone(), y=y.clone()))
        return fake_adv(x).detach()

    def rbs(x, **kw):
        calls["rbs"].append(kw)
        return fake_rbs(x)

    monkeypatch.setattr(M, "pgd", pgd)
    monkeypatch.setattr(M, "rbs", rbs)
    return calls


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, 2, 3, generator=g)
    y = torch.tensor([0, 2, 1, 2])
    return x, y


def expected(name, m, x, y, cfg):
    """The loss of method `name` computed by hand (python floats)."""
    xa = fake_adv(x)
    lab = y.tolist()
    f, fa = hand_features(m, x), hand_features(m, xa)
    z, za = hand_logits(m, f), hand_logits(m, fa)
    fr = hand_features(m, fake_rbs(xa))
    zr = hand_logits(m, fr)
    if name == "st":
        return hand_ce(z, lab)
    if name in ("pgd_at", "at_att"):
        return hand_ce(za, lab)
    if name in ("at_reg", "at_att_reg"):
        return hand_ce(za, lab) + cfg.lam * hand_dist(f, fa, squared=False)
    if name == "alp":
        return 0.5 * (hand_ce(z, lab) + hand_ce(za, lab)) + cfg.lam * hand_dist(z, za, squared=True)
    if name in ("jt", "jt_star", "aelfs"):
        # first half clean, second half adversarial (adv_fraction = 0.5 of 4)
        l1, l2 = cfg.ratio
        out = l1 * hand_ce(z[:2], lab[:2]) + l2 * hand_ce(za[2:], lab[2:])
        if name != "jt":
            out += cfg.beta * (hand_norm(f[:2]) + hand_norm(fa[2:]))
        return out
    if name == "aelf":
        return hand_ce(z, lab) + cfg.lam * hand_dist(fa, f, squared=False)
    if name == "trades":
        return hand_ce(z, lab) + cfg.beta * hand_kl(z, za)
    if name == "rbsat_pgd":
        return hand_ce(zr, lab)
    if name == "rlfat_p":
        return hand_ce(zr, lab) + cfg.eta * hand_dist(zr, za, squared=True)
    if name == "rbsat_trades":
        return hand_ce(z, lab) + cfg.beta * hand_kl(z, zr)
    if name == "rlfat_t":
        return hand_ce(z, lab) + cfg.beta * hand_kl(z, zr) + cfg.eta * hand_dist(zr, za, squared=True)
    raise AssertionError(name)


ATTACK_LOSS = {"trades": "kl", "rbsat_trades": "kl", "rlfat_t": "kl"}
USES_RBS = {"rbsat_pgd", "rlfat_p", "rbsat_trades", "rlfat_t"}
SPLIT = {"jt", "jt_star", "aelfs"}


# --------------------------------------------------------------------------
# registry


def test_registry_complete_and_flags():
    assert list(M.METHODS) == ALL
    for name, m in M.METHODS.items():
        assert m.name == name and callable(m.loss) and m.paper
        assert m.adversarial == (name != "st")
        assert m.needs_attention == (name in ("at_att", "at_att_reg"))
        assert m.freeze_head == (name == "aelfs")
        assert m.init_from_st == (name in ("aelfs", "jt_star"))
        assert m.loss.__doc__ and ("eq." in m.loss.__doc__ or "Table" in m.loss.__doc__)
    with pytest.raises(ValueError, match="pgd_at"):
        M.get("nope")
    assert M.get("trades") is M.METHODS["trades"]
    with pytest.raises(Exception):
        M.METHODS["st"].name = "x"  # frozen


# --------------------------------------------------------------------------
# each loss against its formula


@pytest.mark.parametrize("name", ALL)
def test_loss_matches_hand_formula(name, patched, batch):
    x, y = batch
    cfg = cfg_ns()
    m = Tiny(has_attention=name in ("at_att", "at_att_reg"))
    loss, logs = M.METHODS[name].loss(m, x, y, cfg)
    want = expected(name, m, x, y, cfg)
    assert loss.shape == () and loss.requires_grad
    assert float(loss.detach()) == pytest.approx(want, rel=1e-5, abs=1e-6)
    # logs: detached 0-d tensors, 'loss' equals the loss
    assert "loss" in logs
    for k, v in logs.items():
        assert isinstance(v, torch.Tensor) and v.shape == () and not v.requires_grad, k
    assert float(logs["loss"]) == pytest.approx(float(loss.detach()))
    # the attack was called as configured
    if name == "st":
        assert patched["pgd"] == []
    else:
        (call,) = patched["pgd"]
        assert call["loss"] == ATTACK_LOSS.get(name, "ce")
        assert (call["eps"], call["alpha"], call["steps"]) == (cfg.eps, cfg.alpha, cfg.steps)
        assert call["random_start"] is True and call["bn_train"] is False
        if name in SPLIT:  # only the last half is attacked
            assert call["n"] == 2 and torch.equal(call["x"], x[2:]) and torch.equal(call["y"], y[2:])
        else:
            assert call["n"] == 4 and torch.equal(call["x"], x)
    if name in USES_RBS:
        (r,) = patched["rbs"]
        assert r["k"] == cfg.rbs_k and r["mode"] == cfg.rbs_mode
    else:
        assert patched["rbs"] == []


def test_log_values(patched, batch):
    x, y = batch
    cfg = cfg_ns()
    m = Tiny()
    f, fa = hand_features(m, x), hand_features(m, fake_adv(x))
    z, za = hand_logits(m, f), hand_logits(m, fa)
    _, logs = M.METHODS["at_reg"].loss(m, x, y, cfg)
    assert float(logs["reg"]) == pytest.approx(hand_dist(f, fa, squared=False), rel=1e-5)
    assert float(logs["ce_adv"]) == pytest.approx(hand_ce(za, y.tolist()), rel=1e-5)
    assert float(logs["reg_share"]) == pytest.approx(
        cfg.lam * hand_dist(f, fa, squared=False) / hand_ce(za, y.tolist()), rel=1e-5)
    acc = sum(int(np.argmax(r) == t) for r, t in zip(za, y.tolist())) / 4
    assert float(logs["acc_adv"]) == pytest.approx(acc)
    _, logs = M.METHODS["trades"].loss(m, x, y, cfg)
    assert float(logs["kl"]) == pytest.approx(hand_kl(z, za), rel=1e-5)


def test_split_sizes():
    assert M.split_sizes(128, 0.5) == (64, 64)
    assert M.split_sizes(4, 0.25) == (3, 1)
    assert M.split_sizes(5, 0.5) == (2, 3)
    assert M.split_sizes(7, 0.0) == (7, 0)
    assert M.split_sizes(7, 1.0) == (0, 7)


@pytest.mark.parametrize("frac", [0.0, 1.0])
def test_joint_degenerate_split_is_finite(frac, patched, batch):
    x, y = batch
    loss, _ = M.METHODS["jt_star"].loss(Tiny(), x, y, cfg_ns(adv_fraction=frac))
    assert torch.isfinite(loss)


def test_attention_methods_reject_plain_model(patched, batch):
    x, y = batch
    for name in ("at_att", "at_att_reg"):
        with pytest.raises(ValueError, match="attention"):
            M.METHODS[name].loss(Tiny(has_attention=False), x, y, cfg_ns())


def test_zero_distance_gives_finite_gradient(monkeypatch, batch):
    """x' == x (identity attack): the non-squared norms have a zero sub-gradient, not NaN."""
    x, y = batch
    monkeypatch.setattr(M, "pgd", lambda model, x, y, **kw: x.clone())
    for name in ("at_reg", "aelf"):
        m = Tiny()
        loss, _ = M.METHODS[name].loss(m, x, y, cfg_ns())
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in m.parameters())


def test_generator_is_passed_through(patched, batch):
    x, y = batch
    g = torch.Generator().manual_seed(1)
    seen = []
    M.pgd, old = (lambda model, x, y, **kw: (seen.append(kw["generator"]), x.clone())[1]), M.pgd
    try:
        M.METHODS["rlfat_p"].loss(Tiny(), x, y, cfg_ns(), generator=g)
    finally:
        M.pgd = old
    assert seen == [g] and patched["rbs"][0]["generator"] is g


@pytest.mark.parametrize("name,calls", [
    ("st", 1), ("pgd_at", 1), ("at_reg", 2), ("alp", 2), ("jt", 1), ("jt_star", 1), ("aelfs", 1),
    ("aelf", 2), ("trades", 2), ("rbsat_pgd", 1), ("rlfat_p", 2), ("rbsat_trades", 2), ("rlfat_t", 3),
])
def test_forward_passes(name, calls, patched, batch):
    """Documents the BatchNorm reading: JT family = one combined forward, others separate."""
    x, y = batch
    m = Tiny(bn=True)
    m.train()
    M.METHODS[name].loss(m, x, y, cfg_ns())
    assert m.feature_calls == calls
    assert int(m.bn.num_batches_tracked) == calls


def test_losses_do_not_switch_mode(patched, batch):
    x, y = batch
    for name in ALL:
        m = Tiny(has_attention=True, bn=True)
        m.train()
        M.METHODS[name].loss(m, x, y, cfg_ns())
        assert m.training
        m.eval()
        M.METHODS[name].loss(m, x, y, cfg_ns())
        assert not m.training


# --------------------------------------------------------------------------
# gradient routing of AELF (Algorithm 1) and the frozen head of AELFs


def test_aelf_gradient_routing(patched, batch):
    x, y = batch
    cfg = cfg_ns(lam=0.8)
    m = Tiny()
    loss, _ = M.METHODS["aelf"].loss(m, x, y, cfg)
    loss.backward()
    # head: gradient of CE(x) only, by hand: dW = (softmax(z) - onehot)^T f / B
    f = hand_features(m, x)
    z = hand_logits(m, f)
    gW = np.zeros((3, 4))
    gb = np.zeros(3)
    for fi, zi, yi in zip(f, z, y.tolist()):
        p = np.exp(log_softmax_row(zi))
        p[yi] -= 1.0
        gW += np.outer(p, fi) / 4
        gb += p / 4
    np.testing.assert_allclose(m.head.weight.grad.numpy(), gW, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(m.head.bias.grad.numpy(), gb, rtol=1e-4, atol=1e-6)
    # extractor: gradient of CE(x) + lam * mean ||f(x') - sg f(x)||_2 (clean features a constant)
    m2 = Tiny()
    fx = m2.features(x)
    fa = m2.features(fake_adv(x))
    ref = nn.functional.cross_entropy(m2.head(fx), y) + cfg.lam * (fa - fx.detach()).norm(dim=1).mean()
    ref.backward()
    for p, q in zip(m.body.parameters(), m2.body.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-6)
    # and NOT the bidirectional version (f also pulled towards f')
    m3 = Tiny()
    fx = m3.features(x)
    fa = m3.features(fake_adv(x))
    bi = nn.functional.cross_entropy(m3.head(fx), y) + cfg.lam * (fa - fx).norm(dim=1).mean()
    bi.backward()
    assert not torch.allclose(m.body.weight.grad, m3.body.weight.grad)


def test_trainable_parameters():
    m = Tiny()
    assert len(M.trainable_parameters(m, "jt_star")) == len(list(m.parameters()))
    params = M.trainable_parameters(m, "aelfs")
    head = {id(p) for p in m.head.parameters()}
    assert params and not any(id(p) in head for p in params)
    assert len(params) == len(list(m.parameters())) - 2
    assert not any(p.requires_grad for p in m.head.parameters())


# --------------------------------------------------------------------------
# real MNIST: 2 SGD steps lower each loss; AELFs keeps the head bit-identical


class SmallCNN(nn.Module):
    has_attention = True  # lets at_att / at_att_reg run on it too

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(1), nn.Linear(64, 32), nn.ReLU(),
        )
        self.head = nn.Linear(32, 10)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.features(x))


_MNIST = {}


def mnist(n=128):
    if n not in _MNIST:
        try:
            from robustbook.data import load

            x, y = load("mnist", "train", n=n)
        except (ImportError, FileNotFoundError):  # no robustbook.data / ROBUSTBOOK_DATA unset
            root = os.environ.get("ROBUSTBOOK_DATA", "/work/shared/data")
            d = np.load(os.path.join(root, "mnist.npz"))
            x = torch.from_numpy(d["x_train"][:n]).permute(0, 3, 1, 2).float() / 255
            y = torch.from_numpy(d["y_train"][:n]).long()
        _MNIST[n] = (x, y)
    return _MNIST[n]


def real_cfg(name):
    return cfg_ns(eps=0.3, alpha=0.1, steps=3, lam=0.1, beta=1.0 if name != "aelfs" else 0.1, eta=0.5,
                  ratio=(0.5, 0.5))


def frozen_bn_model(x):
    """SmallCNN whose BatchNorm running statistics are estimated once on `x` and then
    fixed (momentum 0): the eval-mode training attack then sees the same BN before
    and after the steps, so the loss is a function of the weights alone."""
    torch.manual_seed(0)
    model = SmallCNN()
    bns = [mod for mod in model.modules() if isinstance(mod, nn.BatchNorm2d)]
    for bn in bns:
        bn.momentum = None  # cumulative average: one pass = the batch statistics
    model.train()
    with torch.no_grad():
        model(x)
    for bn in bns:
        bn.momentum = 0.0
    return model


def _loss_at(name, model, x, y, cfg, seed):
    torch.manual_seed(seed)
    return M.METHODS[name].loss(model, x, y, cfg)


@pytest.mark.parametrize("name", ALL)
def test_two_sgd_steps_lower_the_loss(name):
    x, y = mnist()
    cfg = real_cfg(name)
    model = frozen_bn_model(x)
    model.train()
    params = M.trainable_parameters(model, name)
    opt = torch.optim.SGD(params, lr=0.05)
    head_before = [p.detach().clone() for p in model.head.parameters()]
    before, _ = _loss_at(name, model, x, y, cfg, seed=1)
    before = float(before.detach())
    for _ in range(2):
        opt.zero_grad(set_to_none=True)
        loss, logs = _loss_at(name, model, x, y, cfg, seed=1)  # same attack / RBS draws
        loss.backward()
        opt.step()
    after, _ = _loss_at(name, model, x, y, cfg, seed=1)
    assert math.isfinite(before) and float(after.detach()) < before, (name, before, float(after.detach()))
    if name == "aelfs":
        for p, q in zip(model.head.parameters(), head_before):
            assert torch.equal(p, q)
            assert p.grad is None


def test_aelfs_head_bit_identical_with_weight_decay():
    """As the loop does it: optimizer over trainable_parameters (SGD, momentum, weight decay)."""
    x, y = mnist()
    cfg = real_cfg("aelfs")
    torch.manual_seed(0)
    model = SmallCNN()
    model.train()
    head_before = {k: v.clone() for k, v in model.head.state_dict().items()}
    body_before = [p.detach().clone() for p in model.body.parameters()]
    opt = torch.optim.SGD(M.trainable_parameters(model, "aelfs"), lr=0.1, momentum=0.9, weight_decay=5e-4)
    for step in range(3):
        opt.zero_grad(set_to_none=True)
        loss, _ = _loss_at("aelfs", model, x, y, cfg, seed=step)
        loss.backward()
        opt.step()
    for k, v in model.head.state_dict().items():
        assert torch.equal(v, head_before[k]), k
    assert any(not torch.equal(p, q) for p, q in zip(model.body.parameters(), body_before))


# --------------------------------------------------------------------------
# check_config


def good(method, **kw):
    """A valid config of `method` (small model; fields the method needs are set)."""
    base = dict(method=method, dataset="mnist", model="madry_mnist_cnn", model_kw={}, lam=0.1, beta=1.0,
                eta=0.5, pretrain_epochs=1, eps=0.3, alpha=0.01, steps=2)
    if method in ("at_att", "at_att_reg"):
        base.update(dataset="cifar10", model="madry_resnet", model_kw={"attention": "nonlinear"}, eps=8 / 255,
                    alpha=2 / 255)
    base.update(kw)
    return RunConfig(**base)


@pytest.mark.parametrize("name", ALL)
def test_valid_configs_pass(name):
    assert good(name).method == name


def _fails(match, method, **kw):
    with pytest.raises(ConfigError, match=match) as e:
        good(method, **kw)
    assert isinstance(e.value, ValueError)
    return str(e.value)


def test_unknown_method():
    msg = _fails(r"RunConfig\.method='nope'", "nope")
    assert "pgd_at" in msg and "rlfat_t" in msg


def test_unknown_model():
    msg = _fails(r"RunConfig\.model='nope'", "pgd_at", model="nope")
    assert "madry_mnist_cnn" in msg


@pytest.mark.parametrize("name", ["at_att", "at_att_reg"])
def test_attention_required(name):
    msg = _fails(r"RunConfig\.model_kw=.*attention", name, model_kw={"filters": "narrow"})
    assert "madry_resnet" in msg
    _fails("model_kw", name, model_kw={"attention": None})
    _fails("model_kw", name, model="cnn_b", model_kw={"attention": "nonlinear"})  # family without attention


@pytest.mark.parametrize("name", [n for n in ALL if n != "st"])
def test_adversarial_needs_attack(name):
    assert "use method='st'" in _fails(r"RunConfig\.steps=0 .*adversarial", name, steps=0)
    assert "use method='st'" in _fails(r"RunConfig\.eps=0\.0 .*adversarial", name, eps=0.0)


def test_st_needs_no_attack():
    assert good("st", steps=0, eps=0.0, lam=0.0, beta=0.0, eta=0.0, pretrain_epochs=0).method == "st"


@pytest.mark.parametrize("name", ["aelfs", "jt_star"])
def test_init_from_st_needs_pretrain(name):
    msg = _fails(r"RunConfig\.pretrain_epochs=0", name, pretrain_epochs=0)
    assert "needs pretrain_epochs > 0: the length of the standard-training run it starts from" in msg


@pytest.mark.parametrize("name", ["trades", "rbsat_trades", "rlfat_t"])
def test_trades_family_needs_beta_and_kl_start(name):
    _fails(r"RunConfig\.beta=0", name, beta=0.0)
    _fails(r"RunConfig\.random_start=False", name, random_start=False)


@pytest.mark.parametrize("name", ["rlfat_p", "rlfat_t"])
def test_rlfat_needs_eta(name):
    _fails(r"RunConfig\.eta=0", name, eta=0.0)


@pytest.mark.parametrize("name,same", [("at_reg", "pgd_at"), ("at_att_reg", "at_att")])
def test_reg_needs_lam(name, same):
    msg = _fails(r"RunConfig\.lam=0", name, lam=0.0)
    assert f"use method='{same}'" in msg


@pytest.mark.parametrize("name", ["alp", "aelf"])
def test_lam_weighted_methods_need_lam(name):
    _fails(r"RunConfig\.lam=0", name, lam=0.0)


@pytest.mark.parametrize("name", ["jt", "jt_star", "aelfs"])
def test_joint_needs_a_split(name):
    _fails(r"RunConfig\.adv_fraction=1", name, adv_fraction=1.0)
    _fails(r"RunConfig\.adv_fraction=0", name, adv_fraction=0.0)


def test_default_config_is_valid():
    assert RunConfig().method == "pgd_at"


def test_unneeded_fields_may_be_zero():
    good("pgd_at", lam=0.0, beta=0.0, eta=0.0, pretrain_epochs=0)
    good("rbsat_pgd", eta=0.0)
    good("jt", beta=0.0, pretrain_epochs=0)
    good("jt_star", beta=0.0)  # JT* from ST without the norm term is allowed
    good("pgd_at", random_start=False)


@pytest.mark.parametrize("name", ["at_att", "at_att_reg"])
def test_attention_methods_on_the_real_attention_resnet(name):
    """Smoke: the FP&R attention model (real PGD, 1 step) runs and back-propagates."""
    from robustbook.models import build

    torch.manual_seed(0)
    model = build("madry_resnet", 10, filters="narrow", attention="nonlinear")
    model.train()
    cfg = good(name, steps=1)
    x, y = torch.rand(4, 3, 32, 32), torch.tensor([1, 2, 3, 4])
    loss, logs = M.METHODS[name].loss(model, x, y, cfg)
    loss.backward()
    assert torch.isfinite(loss) and model.training
    assert all(p.grad is not None for p in model.attn.parameters())
