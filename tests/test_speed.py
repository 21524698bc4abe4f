"""Tests of robustbook.speed: the folded attack copy computes the model's eval-mode
function, follows weight updates, falls back when a fold would be wrong, and the
fast PGD path keeps every invariant of the exact one (seconds, tiny models)."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustbook import attacks, models, speed
from robustbook.attacks import pgd

EPS, ALPHA = 8 / 255, 2 / 255


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _with_bn_stats(model, shape, seed=0):
    """Non-trivial BatchNorm statistics and affine parameters, then eval mode."""
    g = _gen(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.weight[::3] *= -1  # negative scales fold too
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
        model.train()
        model(torch.rand(64, *shape, generator=g))
    return model.eval()


MODELS = {
    "resnet": (lambda: models.build("madry_resnet", 10, filters=[4, 8, 8, 16], units_per_stage=2), (3, 32, 32)),
    "cnn_b": (lambda: models.build("cnn_b", 10), (3, 32, 32)),
    "wrn": (lambda: models.build("wrn", 10, depth=10, widen=1), (3, 32, 32)),
    "attention": (lambda: models.build("madry_resnet", 10, filters=[4, 4, 8, 8], units_per_stage=1,
                                       attention="nonlinear"), (3, 32, 32)),
}


@pytest.fixture(params=sorted(MODELS))
def model_and_x(request):
    torch.manual_seed(0)
    build, shape = MODELS[request.param]
    model = _with_bn_stats(build(), shape)
    x = torch.rand(16, *shape, generator=_gen(1))
    y = torch.randint(0, 10, (16,), generator=_gen(2))
    return model, x, y


def test_folded_copy_computes_the_same_function(model_and_x):
    model, x, _ = model_and_x
    fast = speed.attack_model(model, x)
    assert fast is not model, speed.attack_copy_reason(model)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    n_bn_fast = sum(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert n_bn_fast < n_bn  # something was folded
    with torch.no_grad():
        want, got = model(x), fast(x)
        got_cl = fast(speed.format_input(x))
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4)
    assert torch.allclose(got_cl, want, rtol=1e-4, atol=1e-4)
    # input gradients (what the attack uses) agree as well
    xs = x.clone().requires_grad_(True)
    (g_ref,) = torch.autograd.grad(F.cross_entropy(model(xs), torch.zeros(len(x), dtype=torch.long)), xs)
    xs = x.clone().requires_grad_(True)
    (g_fast,) = torch.autograd.grad(F.cross_entropy(fast(xs), torch.zeros(len(x), dtype=torch.long)), xs)
    assert torch.allclose(g_fast, g_ref, rtol=1e-3, atol=1e-6 * float(g_ref.abs().max()) + 1e-9)


def test_copy_shares_parameters_and_is_cached(model_and_x):
    model, x, _ = model_and_x
    fast = speed.attack_model(model, x)
    assert speed.attack_model(model, x) is fast  # cached
    own = {id(p) for p in list(model.parameters()) + list(model.buffers())}
    extra = [p for p in fast.parameters() if id(p) not in own]
    assert extra and all(not p.requires_grad for p in extra)  # only the fused conv weights are new
    assert any(id(p) in own for p in fast.parameters())  # the rest is shared, not copied
    assert not fast.training


def test_copy_follows_weight_and_statistics_updates(model_and_x):
    model, x, y = model_and_x
    fast = speed.attack_model(model, x)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    model.train()
    F.cross_entropy(model(x), y).backward()  # also moves the BatchNorm running statistics
    opt.step()
    model.eval()
    assert speed.attack_model(model, x) is fast
    with torch.no_grad():
        assert torch.allclose(fast(x), model(x), rtol=1e-4, atol=1e-4)
    model.load_state_dict(copy.deepcopy(model.state_dict()))  # in-place copy: same tensors, new versions
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.9)
        assert torch.allclose(speed.attack_model(model, x)(x), model(x), rtol=1e-4, atol=1e-4)


def test_copy_rebuilt_when_modules_are_replaced():
    torch.manual_seed(0)
    model = _with_bn_stats(models.build("cnn_b", 10), (3, 32, 32))
    x = torch.rand(4, 3, 32, 32)
    first = speed.attack_model(model, x)
    model.body[1] = _with_bn_stats(nn.Sequential(nn.BatchNorm2d(64)), (64, 4, 4))[0]
    second = speed.attack_model(model.eval(), x)
    assert second is not first
    with torch.no_grad():
        assert torch.allclose(second(x), model(x), rtol=1e-4, atol=1e-4)


class _InplaceBetween(nn.Module):
    """conv -> in-place ReLU -> BN: the BN input *is* the conv output tensor, but a fold would drop the ReLU."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        return self.head(self.bn(self.act(self.conv(x))).mean((2, 3)))


class _ConvOutputReused(nn.Module):
    """conv output goes to BN *and* to a shortcut: folding would change the shortcut."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        h = self.conv(x)
        return self.head((self.bn(h) + h).mean((2, 3)))


@pytest.mark.parametrize("cls", [_InplaceBetween, _ConvOutputReused])
def test_unsafe_fold_falls_back_to_the_model(cls):
    torch.manual_seed(0)
    model = _with_bn_stats(cls(), (3, 8, 8))
    x = torch.rand(4, 3, 8, 8)
    assert speed.fold_pairs(model, x)  # the hooks do see a conv -> BN pair ...
    assert speed.attack_model(model, x) is model  # ... but the check rejects the fold
    assert "disagreed" in speed.attack_copy_reason(model)
    with speed.fast():
        out = pgd(model, x, torch.zeros(4, dtype=torch.long), EPS, ALPHA, 2, generator=_gen(0))
    assert (out - x).abs().max() <= EPS + 1e-6


def test_models_without_batchnorm_are_used_as_is():
    model = models.build("madry_mnist_cnn", 10).eval()
    x = torch.rand(2, 1, 28, 28)
    assert speed.attack_model(model, x) is model


# --------------------------------------------------------------------------- the fast PGD path


def _valid(x_adv, x, eps):
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and not x_adv.requires_grad
    assert (x_adv - x).abs().max().item() <= eps + 1e-6
    assert x_adv.min().item() >= 0 and x_adv.max().item() <= 1


CONFIGS = {
    "ce": dict(steps=5),
    "cw": dict(steps=5, loss="cw"),
    "kl": dict(steps=5, loss="kl"),
    "restarts": dict(steps=3, restarts=3),
    "no-start": dict(steps=4, random_start=False),
    "bn-train": dict(steps=3, bn_train=True),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_fast_pgd_invariants(model_and_x, name):
    model, x, y = model_and_x
    kw = CONFIGS[name]
    with speed.fast():
        out = pgd(model, x, y, EPS, ALPHA, generator=_gen(3), **kw)
        rec = pgd(model, x, y, EPS, ALPHA, generator=_gen(3), record_steps=[0, 1, kw["steps"]], **kw)
    _valid(out, x, EPS)
    assert out.is_contiguous()  # returned in x's memory format
    assert torch.equal(rec[kw["steps"]], out)  # record_steps is still exact within the fast path
    for v in rec.values():
        _valid(v, x, EPS)
    exact = pgd(model, x, y, EPS, ALPHA, generator=_gen(3), **kw)
    # same function up to float rounding: a sign flip of a ~0 gradient entry moves a pixel by
    # 2 alpha, so x_adv may differ in a few pixels; the predictions barely differ
    with torch.no_grad():
        differ = (model(out).argmax(1) != model(exact).argmax(1)).sum().item()
    assert differ <= 2, differ


def test_fast_start_equals_exact_start(model_and_x):
    model, x, y = model_and_x
    for loss in ("ce", "kl"):
        with speed.fast():
            start_fast = pgd(model, x, y, EPS, ALPHA, 0, loss=loss, generator=_gen(5))
        start = pgd(model, x, y, EPS, ALPHA, 0, loss=loss, generator=_gen(5))
        assert torch.equal(start_fast, start)


def test_fast_first_step_close_to_exact(model_and_x):
    """One step from the same start: the sign of the gradient agrees almost everywhere."""
    model, x, y = model_and_x
    with speed.fast():
        one_fast = pgd(model, x, y, EPS, ALPHA, 1, generator=_gen(6))
    one = pgd(model, x, y, EPS, ALPHA, 1, generator=_gen(6))
    assert (one_fast != one).float().mean().item() < 0.01


def test_channels_last_input_kept(model_and_x):
    model, x, y = model_and_x
    x_cl = x.contiguous(memory_format=torch.channels_last)
    with speed.fast():
        out = pgd(model, x_cl, y, EPS, ALPHA, 2, generator=_gen(0))
    assert out.is_contiguous(memory_format=torch.channels_last)
    _valid(out, x, EPS)


def test_fast_path_restores_modes_flags_and_grads(model_and_x):
    model, x, y = model_and_x
    model.train()
    F.cross_entropy(model(x), y).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.train()
    frozen = next(model.parameters())
    frozen.requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]
    stats = {k: v.clone() for k, v in model.state_dict().items()}
    with speed.fast():
        pgd(model, x, y, EPS, ALPHA, 2, generator=_gen(0))
    assert all(m.training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None or torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads))
    assert all(torch.equal(v, stats[k]) for k, v in model.state_dict().items())  # eval mode: no BN update


def test_bn_train_attack_uses_the_model_itself(model_and_x):
    model, x, y = model_and_x
    seen = []
    bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    handle = bn.register_forward_hook(lambda m, i, o: seen.append(m.training))
    try:
        with speed.fast():
            pgd(model, x, y, EPS, ALPHA, 2, bn_train=True, generator=_gen(0))
    finally:
        handle.remove()
    assert seen and all(seen)


def test_fast_disabled_is_the_exact_path(model_and_x):
    model, x, y = model_and_x
    with speed.fast(False):
        assert speed.current() is None
        out = pgd(model, x, y, EPS, ALPHA, 3, generator=_gen(0))
    assert torch.equal(out, pgd(model, x, y, EPS, ALPHA, 3, generator=_gen(0)))
    with speed.fast():
        assert speed.current() == speed.Settings()
        with speed.fast(channels_last=False, fold_bn=False):  # nothing on: same arithmetic as exact
            out = pgd(model, x, y, EPS, ALPHA, 3, generator=_gen(0))
        assert speed.current() == speed.Settings()
    assert speed.current() is None
    assert torch.equal(out, pgd(model, x, y, EPS, ALPHA, 3, generator=_gen(0)))


def test_fast_pgd_under_inference_mode_and_bf16_autocast(model_and_x):
    model, x, y = model_and_x
    with torch.inference_mode(), speed.fast():
        out = pgd(model, x.clone(), y.clone(), EPS, ALPHA, 2, generator=_gen(0))
    _valid(out, x, EPS)
    with speed.fast(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = pgd(model, x, y, EPS, ALPHA, 2, generator=_gen(0))
    assert out.dtype == torch.float32
    _valid(out, x, EPS)


def test_helpers(monkeypatch):
    x = torch.rand(2, 3, 4, 4)
    cl = speed.format_input(x)
    assert cl.is_contiguous(memory_format=torch.channels_last) and torch.equal(cl, x)
    assert speed.restore_format(cl, x).is_contiguous()
    assert speed.restore_format(cl, cl) is cl
    flat = torch.rand(3, 5)
    assert speed.format_input(flat) is flat
    m = models.build("cnn_b", 10)
    speed.prepare_model(m)
    assert m.body[0].weight.is_contiguous(memory_format=torch.channels_last)
    lin = nn.Linear(3, 2)
    assert speed.prepare_model(lin) is lin
    monkeypatch.delenv("ROBUSTBOOK_FAST", raising=False)
    assert speed.enabled_by_default()
    monkeypatch.setenv("ROBUSTBOOK_FAST", "0")
    assert not speed.enabled_by_default()


def test_training_run_fast_and_exact(real_cifar, monkeypatch):
    """runs.train works with and without the fast path and hands back a default-layout model."""
    from robustbook import runs
    from robustbook.config import RunConfig

    cfg = RunConfig(dataset="cifar10", model="madry_resnet", model_kw={"filters": [4, 4, 8, 8], "units_per_stage": 1},
                    train_size=32, test_size=16, probe_size=8, augment="crop_flip", batch_size=16, epochs=1,
                    steps=2, device="cpu", profile="smoke")
    fast = runs.train(cfg)
    assert all(p.is_contiguous() for p in fast.model.parameters())
    assert fast.metrics[0]["test_pgd"] <= fast.metrics[0]["test_clean"]
    monkeypatch.setenv("ROBUSTBOOK_FAST", "0")
    exact = runs.train(cfg, root=fast.dir.parent.parent / "exact")
    assert exact.metrics[0]["epoch"] == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fast_pgd_on_cuda(model_and_x):  # pragma: no cover - no GPU on the build machine
    model, x, y = model_and_x
    model, x, y = model.cuda(), x.cuda(), y.cuda()
    g = torch.Generator(device="cuda").manual_seed(0)
    with speed.fast():
        out = pgd(model, x, y, EPS, ALPHA, 3, generator=g)
    _valid(out, x, EPS)


def test_partial_fold_keeps_the_valid_pairs():
    """WRN-10-1: the stem conv's output feeds the first block's BN *and* its identity
    shortcut, so that pair must not fold; the other conv -> BN pair still does."""
    torch.manual_seed(0)
    model = _with_bn_stats(models.build("wrn", 10, depth=10, widen=1), (3, 32, 32))
    x = torch.rand(4, 3, 32, 32)
    pairs = speed.fold_pairs(model, x)
    assert ("conv1", "groups.0.0.bn1") in pairs
    fast = speed.attack_model(model, x)
    assert fast is not model and "not foldable" in speed.attack_copy_reason(model)
    assert isinstance(fast.groups[0][0].bn1, nn.BatchNorm2d)  # kept
    with torch.no_grad():
        assert torch.allclose(fast(x), model(x), rtol=1e-4, atol=1e-4)


def test_invalid_pair_rejected_even_at_fresh_init():
    """Fresh BatchNorms are (almost) the identity, so a wrong fold would pass a check with
    the real values and then break once training moves them: the check uses random ones."""
    model = models.build("wrn", 10, depth=10, widen=1).eval()
    x = torch.rand(2, 3, 32, 32)
    fast = speed.attack_model(model, x)
    assert isinstance(fast.groups[0][0].bn1, nn.BatchNorm2d)
    with torch.no_grad():  # later the statistics move: the copy still matches
        model.groups[0][0].bn1.running_mean.add_(1.0)
        model.conv1.weight.mul_(3.0)
        assert torch.allclose(speed.attack_model(model, x)(x), model(x), rtol=1e-4, atol=1e-4)


def test_fold_does_not_touch_the_global_rng():
    model = _with_bn_stats(models.build("cnn_b", 10), (3, 32, 32))
    state = torch.get_rng_state()
    speed.attack_model(model, torch.rand(2, 3, 32, 32, generator=_gen(0)))
    assert torch.equal(torch.get_rng_state(), state)


def test_copy_built_under_autocast_still_folds():
    """The first attack may run under bf16 autocast (precision='bf16' training): the fold
    check runs in fp32, so the copy is still built."""
    model = _with_bn_stats(models.build("cnn_b", 10), (3, 32, 32))
    x = torch.rand(4, 3, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = speed.attack_model(model, x)
    assert fast is not model, speed.attack_copy_reason(model)


@pytest.fixture(scope="module")
def trained_rgb():
    """A small 3-channel ResNet (BatchNorm, so the fast path folds) trained for a few steps to
    tell which channel is brightest (random-weight models predict one class everywhere, so
    nothing is fooled part-way)."""
    torch.manual_seed(0)
    model = MODELS["resnet"][0]()
    x = torch.rand(96, 3, 16, 16, generator=_gen(7)) * 0.6
    y = torch.arange(96) % 3
    x[torch.arange(96), y] += 0.3  # class c: channel c is brighter
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(30):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval(), x[:24]


def test_fast_stop_when_fooled_matches_exact(trained_rgb):
    """stop_when_fooled on 3-channel images: the fast path steps channels_last sub-batches of
    the examples not yet fooled; it must write each example back to its own row, keep x's
    memory format, and fool the same examples as the exact path (up to float rounding)."""
    model, x = trained_rgb
    with torch.no_grad():
        y = model(x).argmax(1)  # every example starts correctly classified
    kw = dict(steps=8, stop_when_fooled=True)
    for x_in in (x, x.contiguous(memory_format=torch.channels_last)):  # the start is drawn in x's layout
        exact = pgd(model, x_in, y, 0.1, 0.02, generator=_gen(3), **kw)
        with speed.fast():
            out = pgd(model, x_in, y, 0.1, 0.02, generator=_gen(3), **kw)
        _valid(out, x, 0.1)
        assert out.stride() == x_in.stride()
        with torch.no_grad():
            fooled_exact = model(exact).argmax(1) != y
            fooled_fast = model(out).argmax(1) != y
        assert 0 < int(fooled_exact.sum()) < len(y), "the test needs examples fooled part-way"
        assert int((fooled_exact != fooled_fast).sum()) <= 2
        # rows stay with their examples: a row written to another example would move most pixels
        same = (out == exact).flatten(1).float().mean(1)
        assert (same > 0.5).float().mean().item() >= 0.8, same
