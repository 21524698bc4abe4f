"""Tests of robustbook.attacks on tiny CPU models (the whole file runs in seconds)."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustbook import attacks
from robustbook.attacks import accuracy, cw_margin, fgsm, pgd

EPS = 8 / 255
ALPHA = 2 / 255


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _tiny_cnn(seed=0, num_classes=10):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Flatten(),
        nn.Linear(16 * 8 * 8, num_classes),
    )


@pytest.fixture
def cnn():
    model = _tiny_cnn()
    # non-trivial BatchNorm statistics, so eval and train mode differ
    with torch.no_grad():
        model.train()
        model(torch.rand(64, 3, 16, 16, generator=_gen(5)))
    model.eval()
    return model


@pytest.fixture
def batch():
    g = _gen(1)
    x = torch.rand(32, 3, 16, 16, generator=g)
    x[:, :, :2] = 0.0  # pixels on the box boundary exercise the [0, 1] clamp
    x[:, :, -2:] = 1.0
    y = torch.randint(0, 10, (32,), generator=g)
    return x, y


# a tiny MLP trained on a synthetic 3-class task (noisy templates on 1x8x8 images)
@pytest.fixture(scope="module")
def trained():
    g = _gen(0)
    templates = torch.rand(3, 1, 8, 8, generator=g) * 0.6 + 0.2

    def data(n):
        y = torch.randint(0, 3, (n,), generator=g)
        x = (templates[y] + 0.35 * torch.randn(n, 1, 8, 8, generator=g)).clamp(0, 1)
        return x, y

    x_train, y_train = data(512)
    x_test, y_test = data(256)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 3))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(40):
        idx = torch.randint(0, 512, (64,), generator=g)
        loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.zero_grad(set_to_none=True)
    model.eval()
    assert accuracy(model, x_test, y_test) > 0.95  # the task is learnt
    return model, x_test, y_test


def _check_valid(x_adv, x, eps):
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert not x_adv.requires_grad
    assert (x_adv - x).abs().max().item() <= eps + 1e-6
    assert x_adv.min().item() >= 0.0 and x_adv.max().item() <= 1.0


def _logits(model, x):
    with torch.no_grad():
        return model(x)


# ---------------------------------------------------------------------------
# equality with torchattacks
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("start_mode", ["train", "eval"])
def test_pgd_bitwise_equal_to_torchattacks(cnn, batch, start_mode):
    torchattacks = pytest.importorskip("torchattacks")
    x, y = batch
    cnn.train(start_mode == "train")  # both attack in eval mode and restore the mode
    torch.manual_seed(123)
    ref = torchattacks.PGD(cnn, eps=EPS, alpha=ALPHA, steps=10, random_start=True)(x, y)

    # 1) same seed: torchattacks draws torch.empty_like(x).uniform_(-eps, eps)
    ours = pgd(cnn, x, y, EPS, ALPHA, 10, generator=_gen(123))
    assert torch.equal(ours, ref)
    torch.manual_seed(123)  # global generator (generator=None) gives the same draw
    assert torch.equal(pgd(cnn, x, y, EPS, ALPHA, 10), ref)

    # 2) explicit start: torchattacks' start, reproduced from the same seed
    torch.manual_seed(123)
    start = torch.clamp(x + torch.empty_like(x).uniform_(-EPS, EPS), min=0, max=1)
    assert torch.equal(pgd(cnn, x, y, EPS, ALPHA, 10, x_init=start), ref)
    assert cnn.training == (start_mode == "train")


def test_pgd_no_random_start_equal_to_torchattacks(cnn, batch):
    torchattacks = pytest.importorskip("torchattacks")
    x, y = batch
    ref = torchattacks.PGD(cnn, eps=EPS, alpha=ALPHA, steps=7, random_start=False)(x, y)
    assert torch.equal(pgd(cnn, x, y, EPS, ALPHA, 7, random_start=False), ref)


# ---------------------------------------------------------------------------
# constraints
# ---------------------------------------------------------------------------

CONFIGS = {
    "ce": lambda m, x, y, g: pgd(m, x, y, EPS, ALPHA, 5, generator=g),
    "ce-no-start": lambda m, x, y, g: pgd(m, x, y, EPS, ALPHA, 5, random_start=False),
    "cw": lambda m, x, y, g: pgd(m, x, y, EPS, ALPHA, 5, loss="cw", generator=g),
    "kl": lambda m, x, y, g: pgd(m, x, y, EPS, ALPHA, 5, loss="kl", generator=g),
    "ce-restarts": lambda m, x, y, g: pgd(m, x, y, EPS, ALPHA, 3, restarts=3, generator=g),
    "cw-restarts": lambda m, x, y, g: pgd(m, x, y, EPS, ALPHA, 3, loss="cw", restarts=3, generator=g),
    "kl-restarts": lambda m, x, y, g: pgd(m, x, y, EPS, ALPHA, 3, loss="kl", restarts=2, generator=g),
    "big-alpha": lambda m, x, y, g: pgd(m, x, y, EPS, 0.5, 3, generator=g),
    "steps-0": lambda m, x, y, g: pgd(m, x, y, EPS, ALPHA, 0, generator=g),
    "kl-steps-0": lambda m, x, y, g: pgd(m, x, y, 1e-4, ALPHA, 0, loss="kl", generator=g),
    "bn-train": lambda m, x, y, g: pgd(m, x, y, EPS, ALPHA, 3, bn_train=True, generator=g),
    "fgsm": lambda m, x, y, g: fgsm(m, x, y, EPS),
    "fgsm-random": lambda m, x, y, g: fgsm(m, x, y, EPS, random_start=True, generator=g),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_perturbation_within_eps_and_box(cnn, batch, name):
    x, y = batch
    eps = 1e-4 if name == "kl-steps-0" else EPS
    _check_valid(CONFIGS[name](cnn, x, y, _gen(0)), x, eps)


@pytest.mark.parametrize("loss", ["ce", "cw", "kl"])
def test_record_steps_within_eps_and_box(cnn, batch, loss):
    x, y = batch
    out = pgd(cnn, x, y, EPS, ALPHA, 6, loss=loss, record_steps=[6, 0, 2, 2], generator=_gen(0))
    assert list(out) == [0, 2, 6]  # sorted, de-duplicated
    for x_adv in out.values():
        _check_valid(x_adv, x, EPS)
    out = pgd(cnn, x, y, EPS, ALPHA, 4, loss=loss, record_steps=[1, 4], restarts=2, generator=_gen(0))
    for x_adv in out.values():
        _check_valid(x_adv, x, EPS)


def test_eps_zero_returns_x(cnn, batch):
    x, y = batch
    assert torch.equal(pgd(cnn, x, y, 0.0, ALPHA, 3, generator=_gen(0)), x)
    assert torch.equal(fgsm(cnn, x, y, 0.0), x)


# ---------------------------------------------------------------------------
# attack strength on a trained model
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ce", "cw", "kl", "fgsm", "fgsm-random", "ce-restarts"])
def test_robust_accuracy_below_clean(trained, name):
    model, x, y = trained
    clean = accuracy(model, x, y)
    robust = accuracy(model, CONFIGS[name](model, x, y, _gen(3)), y)
    assert robust <= clean
    if name != "kl":  # the label-free KL attack need not fool at this budget
        assert robust < clean


def test_pgd_accuracy_non_increasing_in_steps(trained):
    model, x, y = trained
    eps = 0.08
    out = pgd(model, x, y, eps, eps / 5, 50, record_steps=[1, 5, 20, 50], generator=_gen(1))
    accs = [accuracy(model, out[k], y) for k in (1, 5, 20, 50)]
    clean = accuracy(model, x, y)
    assert all(a >= b for a, b in zip([clean] + accs, accs)), (clean, accs)
    assert accs[-1] < accs[0] - 0.1, accs  # the attack really gets stronger


def test_record_steps_equal_separate_runs(cnn, batch):
    x, y = batch
    start = (x + torch.empty_like(x).uniform_(-EPS, EPS, generator=_gen(9))).clamp(0, 1)
    record = [0, 1, 3, 7]
    out = pgd(cnn, x, y, EPS, ALPHA, 7, record_steps=record, x_init=start)
    for k in record:
        assert torch.equal(out[k], pgd(cnn, x, y, EPS, ALPHA, k, x_init=start)), k
    assert torch.equal(out[0], start)
    # the same holds for a seeded random start
    out = pgd(cnn, x, y, EPS, ALPHA, 5, record_steps=[2, 5], loss="cw", generator=_gen(4))
    assert torch.equal(out[2], pgd(cnn, x, y, EPS, ALPHA, 2, loss="cw", generator=_gen(4)))
    assert torch.equal(out[5], pgd(cnn, x, y, EPS, ALPHA, 5, loss="cw", generator=_gen(4)))


def _first_fooling_reference(model, x, y, steps, loss, x_init):
    """Independent reference for stop_when_fooled: the plain attack recorded at every step,
    then per example the first iterate <= k that the model misclassifies, else iterate k."""
    out = pgd(model, x, y, 0.2, 0.02, steps, record_steps=list(range(steps + 1)), loss=loss, x_init=x_init)
    fooled = torch.stack([_logits(model, out[k]).argmax(1) != y for k in range(steps + 1)])  # (steps+1, N)
    ref = {}
    for k in range(steps + 1):
        first = torch.where(fooled[:k + 1].any(0), fooled[:k + 1].float().argmax(0), torch.full_like(y, k))
        ref[k] = torch.stack([out[int(j)][n] for n, j in enumerate(first)])
    return ref


@pytest.mark.parametrize("loss", ["ce", "cw"])
def test_stop_when_fooled_keeps_first_fooling_iterate(trained, loss):
    model, x, y = trained
    model = copy.deepcopy(model).double()  # float64: sub-batch rounding cannot flip a sign
    x = x.double()
    start = (x + torch.empty_like(x).uniform_(-0.2, 0.2, generator=_gen(2))).clamp(0, 1)
    ref = _first_fooling_reference(model, x, y, 12, loss, start)
    out = pgd(model, x, y, 0.2, 0.02, 12, record_steps=[0, 3, 7, 12], loss=loss, x_init=start, stop_when_fooled=True)
    broken = {k: (_logits(model, out[k]).argmax(1) != y).float().mean().item() for k in out}
    assert 0.05 < broken[3] < broken[12] < 1.0, broken  # some examples fall early, some later, some never
    for k, x_adv in out.items():
        _check_valid(x_adv, x, 0.2)
        assert torch.allclose(x_adv, ref[k], atol=1e-12), k
    # never less broken than the last iterate of the plain attack, step by step
    plain = pgd(model, x, y, 0.2, 0.02, 12, record_steps=[3, 7, 12], loss=loss, x_init=start)
    for k in (3, 7, 12):
        assert broken[k] >= (_logits(model, plain[k]).argmax(1) != y).float().mean().item()
    assert list(broken.values()) == sorted(broken.values())  # never rises with the steps


class _RowCounter(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net, self.rows = net, 0

    def forward(self, x):
        self.rows += len(x)
        return self.net(x)


def test_stop_when_fooled_spends_no_steps_on_fooled_examples(trained):
    model, x, y = trained
    counted = _RowCounter(model)
    wrong = (y + 1) % 3  # every example is "fooled" at its start
    out = pgd(counted, x, wrong, 0.2, 0.02, 10, random_start=False, stop_when_fooled=True)
    assert counted.rows == len(x) and torch.equal(out, x)  # one forward pass, no step
    counted.rows = 0
    pgd(counted, x, y, 0.2, 0.02, 10, random_start=False, stop_when_fooled=True)
    assert len(x) < counted.rows < 10 * len(x)  # the examples it breaks stop costing


def test_stop_when_fooled_with_restarts(trained):
    model, x, y = trained
    out = pgd(model, x, y, 0.1, 0.02, 8, restarts=3, generator=_gen(6), record_steps=[4, 8], stop_when_fooled=True)
    plain = pgd(model, x, y, 0.1, 0.02, 8, restarts=3, generator=_gen(6), record_steps=[4, 8])
    for k in (4, 8):
        _check_valid(out[k], x, 0.1)
        assert accuracy(model, out[k], y) <= accuracy(model, plain[k], y)


def test_x_init_not_modified(cnn, batch):
    x, y = batch
    start = (x + 0.01).clamp(0, 1)
    copy = start.clone()
    pgd(cnn, x, y, EPS, ALPHA, 3, x_init=start)
    assert torch.equal(start, copy)


@pytest.mark.parametrize("loss", ["ce", "cw"])
def test_restarts_keep_first_fooling_restart(trained, loss):
    model, x, y = trained
    eps, alpha, steps, n = 0.1, 0.02, 3, 3
    got = pgd(model, x, y, eps, alpha, steps, loss=loss, restarts=n, record_steps=[2, steps],
              generator=_gen(11))
    # the restarts draw their starts one after the other from the generator
    g = _gen(11)
    runs = [pgd(model, x, y, eps, alpha, steps, loss=loss, record_steps=[2, steps], generator=g)
            for _ in range(n)]
    for k in (2, steps):
        cands = torch.stack([r[k] for r in runs])  # (restarts, N, ...)
        logits = torch.stack([_logits(model, c) for c in cands])
        fooled = logits.argmax(-1) != y
        values = torch.stack([attacks.LOSSES[loss](lg, y, kappa=50.0) for lg in logits])
        expected, later_fool, unfooled = [], 0, 0
        for i in range(len(y)):
            hits = fooled[:, i].nonzero()
            r = hits[0, 0] if len(hits) else values[:, i].argmax()
            expected.append(cands[r, i])
            later_fool += bool(len(hits)) and bool(r > 0)
            unfooled += not len(hits)
        assert later_fool > 0 and unfooled > 0  # both branches of the rule are exercised
        assert torch.equal(got[k], torch.stack(expected)), k
        # and restarts never hurt: at least as many examples fooled as by restart 0
        assert (_logits(model, got[k]).argmax(1) != y).sum() >= fooled[0].sum()


def test_restarts_kl_keep_highest_kl(trained):
    model, x, y = trained
    got = pgd(model, x, y, 0.05, 0.01, 3, loss="kl", restarts=3, generator=_gen(12))
    g = _gen(12)
    runs = torch.stack([pgd(model, x, y, 0.05, 0.01, 3, loss="kl", generator=g) for _ in range(3)])
    log_p = F.log_softmax(_logits(model, x), 1)
    kls = torch.stack([attacks.kl_divergence(_logits(model, r), log_p) for r in runs])
    best = kls.argmax(0)
    assert torch.equal(got, runs[best, torch.arange(len(y))])


# ---------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------


def test_cw_margin_by_hand():
    logits = torch.tensor([[2.0, 5.0, 1.0],
                           [2.0, 5.0, 1.0],
                           [1.0, -3.0, -2.0]], requires_grad=True)
    y = torch.tensor([0, 1, 0])
    # row 0: z_y=2, best other 5: -relu(2 - 5 + 1) = 0  (margin 3 >= kappa: saturated)
    # row 1: z_y=5, best other 2: -relu(5 - 2 + 1) = -4
    # row 2: z_y=1, best other -2 (the true class is masked out; without the mask
    #        the "(1 - onehot) * z" trick would use 0): -relu(1 + 2 + 1) = -4
    value = cw_margin(logits, y, kappa=1.0)
    assert torch.equal(value, torch.tensor([0.0, -4.0, -4.0]))
    value.sum().backward()
    assert torch.equal(logits.grad, torch.tensor([[0.0, 0.0, 0.0],
                                                  [1.0, -1.0, 0.0],
                                                  [-1.0, 0.0, 1.0]]))
    # Madry's kappa = 50: row 0 is -relu(2 - 5 + 50) = -47
    assert cw_margin(logits.detach(), y, kappa=50.0)[0].item() == -47.0
    assert torch.equal(attacks.LOSSES["cw"](logits.detach(), y, kappa=1.0), value.detach())


def test_kl_start_is_small_gaussian(cnn, batch):
    x, y = batch
    start = pgd(cnn, x, y, EPS, ALPHA, 0, loss="kl", generator=_gen(7))
    noise = torch.randn(x.shape, generator=_gen(7))
    assert torch.allclose(start, (x + 0.001 * noise).clamp(0, 1), rtol=0, atol=1e-6)
    inside = (x > 0.01) & (x < 0.99)
    delta = (start - x)[inside]
    assert abs(delta.std().item() - 0.001) < 0.0001
    assert abs(delta.mean().item()) < 0.0001


def test_kl_attack_increases_kl(trained):
    model, x, y = trained
    log_p = F.log_softmax(_logits(model, x), 1)
    out = pgd(model, x, y, 0.05, 0.01, 10, loss="kl", record_steps=[0, 10], generator=_gen(8))
    kl_start = attacks.kl_divergence(_logits(model, out[0]), log_p)
    kl_end = attacks.kl_divergence(_logits(model, out[10]), log_p)
    assert kl_end.sum() > 100 * kl_start.sum()
    assert (kl_end >= kl_start).float().mean() > 0.95
    # and more than a random perturbation of the same size
    rand = (x + 0.05 * torch.empty_like(x).uniform_(-1, 1, generator=_gen(2)).sign()).clamp(0, 1)
    assert kl_end.sum() > attacks.kl_divergence(_logits(model, rand), log_p).sum()


def test_cw_attack_lowers_margin(trained):
    model, x, y = trained
    before = cw_margin(_logits(model, x), y, 50.0).sum()
    after = cw_margin(_logits(model, pgd(model, x, y, 0.05, 0.01, 10, loss="cw", generator=_gen(0))), y, 50.0).sum()
    assert after > before


def test_fgsm_semantics(cnn, batch):
    x, y = batch
    assert torch.equal(fgsm(cnn, x, y, EPS), pgd(cnn, x, y, EPS, EPS, 1, random_start=False))
    assert torch.equal(fgsm(cnn, x, y, EPS, random_start=True, generator=_gen(3)),
                       pgd(cnn, x, y, EPS, 1.25 * EPS, 1, generator=_gen(3)))
    # without random start: x + eps * sign(grad of CE), clipped to [0, 1]
    x_req = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(cnn(x_req), y), x_req)
    assert torch.allclose(fgsm(cnn, x, y, EPS), (x + EPS * grad.sign()).clamp(0, 1), rtol=0, atol=1e-7)


# ---------------------------------------------------------------------------
# model state
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ce", "kl", "bn-train", "fgsm-random", "ce-restarts"])
@pytest.mark.parametrize("mode", ["train", "eval", "mixed"])
def test_mode_and_grad_flags_restored(batch, name, mode):
    model = _tiny_cnn()
    x, y = batch
    model.train(mode == "train")
    if mode == "mixed":
        model[1].eval()  # e.g. frozen BatchNorm inside a training model
    model[0].weight.requires_grad_(False)  # a frozen parameter must stay frozen
    modes = [m.training for m in model.modules()]
    flags = [p.requires_grad for p in model.parameters()]
    seen = []
    model[1].register_forward_hook(lambda m, i, o: seen.append((m.training, model[5].training)))
    CONFIGS[name](model, x, y, _gen(0))
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    # during the attack: eval mode, except BatchNorm when bn_train=True; dropout always off
    bn_train = name == "bn-train"
    assert seen and all(s == (bn_train, False) for s in seen)


def test_state_restored_on_exception(batch):
    x, y = batch

    class Flaky(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = _tiny_cnn()
            self.calls = 0

        def forward(self, inp):
            self.calls += 1
            if self.calls == 3:
                raise RuntimeError("boom")
            return self.net(inp)

    model = Flaky().train()
    with pytest.raises(RuntimeError, match="boom"):
        pgd(model, x, y, EPS, ALPHA, 5)
    assert all(m.training for m in model.modules())
    assert all(p.requires_grad and p.grad is None for p in model.parameters())


def test_existing_grads_untouched(cnn, batch):
    x, y = batch
    F.cross_entropy(cnn(x), y).backward()
    before = [p.grad.clone() for p in cnn.parameters()]
    pgd(cnn, x, y, EPS, ALPHA, 3, generator=_gen(0))
    assert all(torch.equal(p.grad, b) for p, b in zip(cnn.parameters(), before))


def test_works_under_no_grad_and_inference_mode(cnn, batch):
    x, y = batch
    ref = pgd(cnn, x, y, EPS, ALPHA, 3, generator=_gen(0))
    with torch.no_grad():
        assert torch.equal(pgd(cnn, x, y, EPS, ALPHA, 3, generator=_gen(0)), ref)
    with torch.inference_mode():
        xi, yi = x.clone(), y.clone()
        assert torch.equal(pgd(cnn, xi, yi, EPS, ALPHA, 3, generator=_gen(0)), ref)
        assert torch.equal(pgd(cnn, xi, yi, EPS, ALPHA, 3, loss="kl", generator=_gen(0)),
                           pgd(cnn, x, y, EPS, ALPHA, 3, loss="kl", generator=_gen(0)))


def test_accuracy_helper(cnn, batch):
    x, y = batch
    cnn.train()
    expected = (_logits(cnn.eval(), x).argmax(1) == y).float().mean().item()
    cnn.train()
    assert accuracy(cnn, x, y, batch_size=5) == pytest.approx(expected)
    assert cnn.training
    with pytest.raises(ValueError, match="batch_size"):
        accuracy(cnn, x, y, batch_size=0)


# ---------------------------------------------------------------------------
# validation and registry
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(eps=-0.1), r"eps must be >= 0"),
        (dict(eps=8), r"8/255"),
        (dict(eps=float("nan")), r"eps must be a finite number"),
        (dict(alpha=0.0), r"alpha"),
        (dict(alpha=2), r"2/255"),
        (dict(steps=-1), r"steps must be an int >= 0"),
        (dict(steps=2.5), r"steps must be an int"),
        (dict(loss="xent"), r"unknown loss 'xent'; choose one of \['ce', 'cw', 'kl'\]"),
        (dict(restarts=0), r"restarts must be an int >= 1"),
        (dict(restarts=2, random_start=False), r"restarts > 1 needs random_start=True"),
        (dict(record_steps=[5, 20]), r"record_steps must be an int in \[0, steps=10\]"),
        (dict(record_steps=[]), r"record_steps is empty"),
        (dict(kappa=-1.0), r"kappa"),
        (dict(generator="seed"), r"torch.Generator"),
        (dict(stop_when_fooled=True, loss="kl"), r"stop_when_fooled needs loss='ce' or 'cw'"),
        (dict(stop_when_fooled=True, bn_train=True), r"bn_train=False"),
    ],
)
def test_bad_arguments_raise(cnn, batch, kwargs, match):
    x, y = batch
    args = dict(eps=EPS, alpha=ALPHA, steps=10)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        pgd(cnn, x, y, **args)


def test_bad_inputs_raise(cnn, batch):
    x, y = batch
    with pytest.raises(ValueError, match=r"in \[0, 1\].*divide 0-255 images by 255"):
        pgd(cnn, x * 255, y, EPS, ALPHA, 1)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        pgd(cnn, x - 0.5, y, EPS, ALPHA, 1)
    with pytest.raises(ValueError, match=r"same batch size: x.shape\[0\]=32 but y.shape\[0\]=31"):
        pgd(cnn, x, y[:-1], EPS, ALPHA, 1)
    with pytest.raises(ValueError, match="integer tensor"):
        pgd(cnn, x, y.float(), EPS, ALPHA, 1)
    with pytest.raises(ValueError, match="floating-point"):
        pgd(cnn, (x * 255).to(torch.uint8), y, EPS, ALPHA, 1)
    with pytest.raises(ValueError, match="within eps"):
        pgd(cnn, x, y, EPS, ALPHA, 1, x_init=(x + 0.1).clamp(0, 1))
    with pytest.raises(ValueError, match="shape, dtype and device"):
        pgd(cnn, x, y, EPS, ALPHA, 1, x_init=x[:3])
    with pytest.raises(ValueError, match="8/255"):
        fgsm(cnn, x, y, 8)


def test_registry():
    assert attacks.get("pgd") is pgd and attacks.get("fgsm") is fgsm
    assert set(attacks.ATTACKS) == {"pgd", "fgsm"}
    assert set(attacks.LOSSES) == {"ce", "cw", "kl"}
    with pytest.raises(ValueError, match="unknown attack 'cw'; available: fgsm, pgd"):
        attacks.get("cw")


def test_eps_message_mentions_scale():
    with pytest.raises(ValueError) as err:
        attacks._check_eps(8)
    msg = str(err.value)
    assert "8/255" in msg and "0.0314" in msg and math.isclose(8 / 255, 0.0314, abs_tol=1e-4)
