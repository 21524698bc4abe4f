"""Tests of robustbook.analysis: each analysis against a hand computation on linear or
hand-built models, the storage round trip, and the run-level cache (seconds, CPU)."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustbook import analysis as an
from robustbook import models, runs
from robustbook.config import RunConfig
from robustbook.transforms import brightness, gamma, shift

pytestmark = pytest.mark.usefixtures("one_thread")


class Linear(nn.Module):
    """logits = W flatten(x) + b, with features = flatten(x)."""

    has_attention = False

    def __init__(self, shape=(3, 8, 8), classes=10, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.head = nn.Linear(int(np.prod(shape)), classes)

    def features(self, x):
        return x.flatten(1)

    def forward(self, x):
        return self.head(self.features(x))


class FakeAttention(nn.Module):
    """local_features(x) = x (1 channel, 8x8 positions); fixed attention weights w."""

    has_attention = True

    def __init__(self, w):
        super().__init__()
        self.w = w  # (64,)
        self.head = nn.Linear(64, 2)

    def local_features(self, x):
        return x

    def attention(self, x):
        return self.w.expand(len(x), 64).view(-1, 8, 8)

    def forward(self, x):
        return self.head(x.flatten(1))


def _hand_grad_norm(model, x, y):
    """||grad_x CE||_2 of a linear model: W^T (softmax(z) - onehot(y))."""
    W, b = model.head.weight.detach(), model.head.bias.detach()
    p = torch.softmax(x.flatten(1) @ W.T + b, dim=1)
    g = (p - F.one_hot(y, W.shape[0]).float()) @ W
    return g, g.norm(dim=1)


def _batch(n=12, shape=(3, 8, 8), seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *shape, generator=g), torch.randint(0, 10, (n,), generator=g)


# --------------------------------------------------------------------------- pure analyses
def test_loss_sensitivity_equals_hand_computation():
    model = Linear()
    x, y = _batch()
    res = an.loss_sensitivity(model, x, y, brightness=(-0.15, 0.15), gammas=(0.8, 1.2), batch_size=5)
    for a in (-0.15, 0.15):
        _, norms = _hand_grad_norm(model, brightness(x, a), y)
        assert res["brightness"][a] == pytest.approx(norms.mean().item(), rel=1e-5)
    for gm in (0.8, 1.2):
        _, norms = _hand_grad_norm(model, gamma(x, gm), y)
        assert res["gamma"][gm] == pytest.approx(norms.mean().item(), rel=1e-5)
    assert res["brightness"][-0.15] != res["brightness"][0.15]


def test_input_gradient_is_per_example_and_leaves_the_model_alone():
    model = Linear()
    model.train()
    x, y = _batch()
    g = an.input_gradient(model, x, y, batch_size=5)
    hand, _ = _hand_grad_norm(model, x, y)
    assert torch.allclose(g.flatten(1), hand, atol=1e-6)
    assert model.training and model.head.weight.grad is None and model.head.weight.requires_grad
    logit_grad = an.input_gradient(model, x, y, target="logit")
    assert torch.allclose(logit_grad.flatten(1), model.head.weight[y].detach(), atol=1e-6)


def test_gradient_maps_clip_at_three_std_and_rescale():
    model = Linear()
    x, y = _batch()
    res = an.gradient_maps(model, x, y)
    g, clipped, raw = res["gradient"], res["clipped"], res["unclipped"]
    assert clipped.min() >= 0 and clipped.max() <= 1 and raw.min() >= 0 and raw.max() <= 1
    for i in range(len(y)):
        gi = g[i].flatten()
        mean, std = gi.mean(), gi.std(unbiased=False)
        expect = ((gi.clamp(mean - 3 * std, mean + 3 * std) - (mean - 3 * std)) / (6 * std))
        assert torch.allclose(clipped[i].flatten(), expect, atol=1e-5)
        assert raw[i].min() == pytest.approx(0) and raw[i].max() == pytest.approx(1)
    # an outlier pixel (huge weights) saturates at 0 or 1 in the clipped map
    w = model.head.weight.detach().clone()
    w[:, 0] = 100.0 * torch.arange(10.0)
    with torch.no_grad():
        model.head.weight.copy_(w)
    out = an.gradient_maps(model, x, y)["clipped"]
    assert ((out.flatten(1)[:, 0] == 0) | (out.flatten(1)[:, 0] == 1)).all()


def test_normalized_gradient_and_signs():
    model = Linear()
    x, y = _batch()
    g, _ = _hand_grad_norm(model, x, y)
    n = an.normalized_gradient(model, x, y).flatten(1)
    assert torch.allclose(n.abs().max(1).values, torch.ones(len(y)))
    assert torch.allclose(n, g / g.abs().max(1, keepdim=True).values, atol=1e-5)  # G/||G|| then /max|.|
    res = an.gradient_signs(model, x, y, thresholds=(1e-3, 1e-2, 5e-2))
    s = res["signs"]
    assert s.shape == (3, *x.shape) and s.dtype == torch.int8
    for t_i, t in enumerate((1e-3, 1e-2, 5e-2)):
        keep = res["gradient"].abs() > t
        assert torch.equal(s[t_i] != 0, keep)
        assert torch.equal(s[t_i][keep], torch.sign(res["gradient"])[keep].to(torch.int8))
    assert (s[2] != 0).sum() < (s[0] != 0).sum()  # higher threshold, sparser


def test_smoothgrad_of_a_linear_model_is_the_weight_row():
    model = Linear()
    x, y = _batch(n=4)
    res = an.smoothgrad(model, x, y, n_samples=8, noise=0.2, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(res["gradient"].flatten(1), model.head.weight[y].detach(), atol=1e-5)
    sal = res["salience"]
    assert sal.shape == (4, 8, 8) and sal.min() >= 0 and sal.max() <= 1
    assert torch.allclose(sal.flatten(1).max(1).values, torch.ones(4))


def test_attention_rank_curve_orders_by_feature_distance():
    w = torch.softmax(-torch.arange(64.0) / 10, 0)  # position n gets less weight as n grows
    model = FakeAttention(w)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 1, 8, 8, generator=g) * 0.5
    x_adv = x + (torch.arange(64.0) / 640).view(1, 1, 8, 8)  # position n perturbed by n/640
    perm = torch.randperm(64, generator=g)  # shuffle positions: the ranking must follow the distance
    model.w = w[perm]
    x_adv = x + (torch.arange(64.0) / 640)[perm].view(1, 1, 8, 8)
    res = an.attention_rank_curve(model, x, torch.zeros(6, dtype=torch.long), x_adv=x_adv)
    assert res["curve"].shape == (64,)
    assert torch.allclose(res["curve"], w, atol=1e-6)  # rank r = the r-th least perturbed position
    assert torch.allclose(res["sorted_weights"].sum(1), torch.ones(6))
    assert (res["distance_by_rank"].diff() >= 0).all()


def test_attention_rank_curve_on_the_attention_resnet():
    torch.manual_seed(0)
    model = models.build("madry_resnet", 10, filters=(4, 4, 8, 8), units_per_stage=1, attention="nonlinear").eval()
    x, y = _batch(n=6, shape=(3, 32, 32))
    res = an.attention_rank_curve(model, x, y, eps=8 / 255, alpha=2 / 255, steps=2)
    assert res["curve"].shape == (64,) and res["sorted_weights"].shape == (6, 64)
    assert torch.allclose(res["sorted_weights"].sum(1), torch.ones(6), atol=1e-5)
    assert res["curve"].sum().item() == pytest.approx(1.0, abs=1e-5)
    maps = an.attention_maps(model, x)
    assert maps.shape == (6, 8, 8) and torch.allclose(maps.sum((1, 2)), torch.ones(6), atol=1e-5)
    with pytest.raises(ValueError, match="attention model"):
        an.attention_maps(Linear(), x)


def test_gradient_map_accuracy_uses_the_classifier_on_rescaled_maps():
    model = Linear()
    x, y = _batch(n=16)

    class Seen(nn.Module):  # records its inputs; predicts class 3
        def __init__(self):
            super().__init__()
            self.p = nn.Parameter(torch.zeros(1))
            self.inputs = []

        def forward(self, z):
            self.inputs.append(z.clone())
            out = torch.zeros(len(z), 10)
            out[:, 3] = 1
            return out + self.p

    clf = Seen()
    res = an.gradient_map_accuracy(clf, model, x, y, batch_size=8)
    acc = (y == 3).float().mean().item()
    assert res == {"with_clipping": pytest.approx(acc), "without_clipping": pytest.approx(acc)}
    seen = torch.cat(clf.inputs)
    assert seen.min() >= 0 and seen.max() <= 1 and seen.shape[1:] == x.shape[1:]


# --------------------------------------------------------------------------- storage and cache
def test_store_and_load_round_trip(tmp_path):
    run = runs.Run(cfg=RunConfig(), dir=tmp_path / "r", model=Linear())
    arrays = {"curve": torch.linspace(0, 1, 64), "big": np.random.default_rng(0).random((3, 40, 40)),
              "img": np.arange(12, dtype=np.uint8).reshape(3, 4), "sign": torch.tensor([-1, 0, 1], dtype=torch.int8),
              "nan": [1.0, float("nan")], "scalar": 0.5, "flags": np.array([True, False])}
    path = an.store(run, "demo", arrays, {"note": "x"})
    doc = json.loads(path.read_text())
    assert "data" in doc["arrays"]["curve"] and doc["arrays"]["big"]["npz"] == "demo.npz"
    out = an.load_stored(run, "demo")
    assert out["meta"] == {"note": "x"}
    assert np.allclose(out["arrays"]["curve"], np.linspace(0, 1, 64), atol=1e-6)
    assert np.allclose(out["arrays"]["big"], arrays["big"], atol=1e-6) and out["arrays"]["big"].shape == (3, 40, 40)
    assert out["arrays"]["img"].dtype == np.uint8 and np.array_equal(out["arrays"]["img"], arrays["img"])
    assert out["arrays"]["sign"].dtype == np.int8 and out["arrays"]["sign"].tolist() == [-1, 0, 1]
    assert np.isnan(out["arrays"]["nan"][1]) and out["arrays"]["scalar"].shape == ()
    assert out["arrays"]["flags"].tolist() == [True, False]
    with pytest.raises(FileNotFoundError):
        an.load_stored(run, "missing")


def _mnist_run(tmp_path, model, name="run"):
    cfg = RunConfig(dataset="mnist", model="madry_mnist_cnn", model_kw={}, train_size=64, test_size=64,
                    augment="none", eps=0.3, alpha=0.1, steps=2, random_start=False, profile="smoke")
    return runs.Run(cfg=cfg, dir=tmp_path / name, model=model)


def test_analyse_stores_and_caches(real_mnist, tmp_path, monkeypatch):
    run = _mnist_run(tmp_path, Linear(shape=(1, 28, 28)))
    first = an.analyse(run, "loss_sensitivity", n=32)
    assert first["arrays"]["brightness"].shape == (2,) and first["meta"]["run_id"] == "run"
    assert first["meta"]["gammas"] == [0.8, 1.2] and "32 of" in first["meta"]["images"]
    files = list((run.dir / "analysis").glob("loss_sensitivity-*.json"))
    assert len(files) == 1
    calls = []
    monkeypatch.setitem(an.ANALYSES, "loss_sensitivity", lambda *a, **k: calls.append(1) or pytest.fail("recomputed"))
    again = an.analyse(run, "loss_sensitivity", n=32)
    assert not calls and np.array_equal(again["arrays"]["brightness"], first["arrays"]["brightness"])
    assert an.analysis_name("loss_sensitivity", n=32) != an.analysis_name("loss_sensitivity", n=16)
    with pytest.raises(ValueError, match="unknown analysis"):
        an.analyse(run, "nope")


def test_analysis_is_keyed_by_the_weights_it_measured(real_mnist, tmp_path, monkeypatch):
    """A run retrained after its analysis (a new weights.json) makes the stored analysis stale:
    it is not loaded (StaleAnalysis names the run) and `analyse` recomputes it; the same holds
    for a run passed as an argument (the classifier of gradient_map_accuracy)."""
    run = _mnist_run(tmp_path, Linear(shape=(1, 28, 28)))
    clf = _mnist_run(tmp_path, Linear((1, 28, 28), seed=1), "clf")
    for r, sha in ((run, "a" * 64), (clf, "c" * 64)):
        r.dir.mkdir(parents=True, exist_ok=True)
        (r.dir / "weights.json").write_text(json.dumps({"sha256": sha}))
    first = an.analyse(run, "loss_sensitivity", n=16)
    assert first["meta"]["weights"] == {"run": "a" * 64}
    name = an.analysis_name("loss_sensitivity", n=16)
    assert an.is_current(run, name)
    (run.dir / "weights.json").write_text(json.dumps({"sha256": "b" * 64}))
    assert not an.is_current(run, name)
    with pytest.raises(an.StaleAnalysis, match="run was retrained"):
        an.load_stored(run, name)
    calls = []
    real = an.ANALYSES["loss_sensitivity"]
    monkeypatch.setitem(an.ANALYSES, "loss_sensitivity", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = an.analyse(run, "loss_sensitivity", n=16)
    assert calls == [1] and again["meta"]["weights"] == {"run": "b" * 64}
    acc = an.analyse(run, "gradient_map_accuracy", classifier=clf, n_train=8, n_test=8)
    assert acc["meta"]["weights"] == {"run": "b" * 64, "clf": "c" * 64}
    (clf.dir / "weights.json").write_text(json.dumps({"sha256": "d" * 64}))
    assert not an.is_current(run, an.analysis_name("gradient_map_accuracy", classifier=clf, n_train=8, n_test=8))


class MeanPool(nn.Module):
    """Logits from the image's mean and its row-wise profile pooled over columns: exactly
    invariant to a horizontal wrap-around shift, not to a vertical one."""

    def __init__(self, h=32, classes=10, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.fc = nn.Linear(h, classes)

    def forward(self, x):
        return self.fc(x.mean(dim=(1, 3)))


def test_shift_sweep_invariants():
    torch.manual_seed(0)
    x, y = torch.rand(64, 1, 32, 32), torch.randint(0, 10, (64,))
    model = MeanPool().eval()
    y = model(x).argmax(1)  # every image correct before any shift
    y[:16] = (y[:16] + 1) % 10  # ... but 16: clean accuracy 0.75
    res = an.shift_sweep(model, x, y, pixels=(0, 3, 8), fills=("zero", "wrap"))
    assert set(res) == {"zero", "wrap"} and res["zero"].shape == (4, 3)
    assert np.allclose(res["zero"][:, 0], 0.75) and np.allclose(res["wrap"][:, 0], 0.75)  # 0 px: the clean set
    assert np.allclose(res["wrap"][:2], 0.75)  # left/right wrapped: the model cannot tell
    assert not np.allclose(res["wrap"][2:, 1:], 0.75)  # up/down wrapped: the row profile moves, so do predictions


def test_shifted_accuracy_and_gradient_figures_on_a_run(real_mnist, tmp_path):
    run = _mnist_run(tmp_path, Linear(shape=(1, 28, 28)))
    out = an.analyse(run, "shifted_accuracy", n=32, pixels=8, n_images=3)
    a = out["arrays"]
    assert out["meta"]["sets"] == ["none", "left", "right", "up", "down"]
    assert a["accuracy_clean"].shape == (5,) and a["accuracy_adv"].shape == (5,)
    assert (a["accuracy_adv"] <= a["accuracy_clean"] + 1e-9).all()
    assert out["meta"]["attack"] == {"eps": 0.3, "alpha": 0.1, "steps": 2, "random_start": False}
    ex = a["examples"]
    assert ex.shape == (3, 5, 1, 28, 28) and ex.dtype == np.uint8
    base = torch.from_numpy(ex[:, 0]).float() / 255
    assert np.array_equal(ex[:, 1], (shift(base, "left", 8) * 255).round().to(torch.uint8).numpy())
    sweep = an.analyse(run, "shift_sweep", n=32, pixels=(0, 4, 8))
    assert sweep["meta"]["pixels"] == [0, 4, 8] and sweep["meta"]["directions"] == ["left", "right", "up", "down"]
    assert sweep["arrays"]["accuracy_zero"].shape == (4, 3) == sweep["arrays"]["accuracy_wrap"].shape
    assert np.allclose(sweep["arrays"]["accuracy_zero"][:, 0], a["accuracy_clean"][0])
    assert np.allclose(sweep["arrays"]["accuracy_zero"][:, 2], a["accuracy_clean"][1:])  # 8 px: the AELF sets
    signs = an.analyse(run, "gradient_signs", digits=(0, 2))
    assert signs["arrays"]["labels"].tolist() == [0, 2] and signs["arrays"]["signs"].shape == (3, 2, 1, 28, 28)
    norm = an.analyse(run, "normalized_gradient", n_images=4)["arrays"]["normalized"]
    assert np.allclose(np.abs(norm).reshape(4, -1).max(1), 1.0, atol=1e-5)
    maps = an.analyse(run, "gradient_maps", n_images=4)["arrays"]
    assert maps["clipped"].shape == (4, 1, 28, 28) and maps["images"].dtype == np.uint8
    sg = an.analyse(run, "smoothgrad", n_images=2, n_samples=3)["arrays"]
    assert sg["salience"].shape == (2, 28, 28) and sg["correct"].dtype == bool
    acc = an.analyse(run, "gradient_map_accuracy", classifier=_mnist_run(tmp_path, Linear((1, 28, 28), seed=1), "clf"),
                     n_train=16, n_test=16)
    assert acc["arrays"]["accuracy"].shape == (2, 2) and acc["meta"]["classifier_run"] == "clf"


def test_attention_analyses_on_runs(real_cifar, tmp_path):
    cfg = RunConfig(dataset="cifar10", model_kw={"filters": "narrow", "attention": "nonlinear"}, method="at_att",
                    train_size=64, test_size=32, profile="smoke", steps=1)
    torch.manual_seed(0)
    small = dict(filters=(4, 4, 8, 8), units_per_stage=1)
    nl = runs.Run(cfg=cfg, dir=tmp_path / "nl", model=models.build("madry_resnet", 10, attention="nonlinear", **small))
    lin = runs.Run(cfg=cfg, dir=tmp_path / "lin", model=models.build("madry_resnet", 10, attention="linear", **small))
    curve = an.analyse(nl, "attention_rank_curve", n_train=8, n_test=8)
    for split in ("train", "test"):
        c = curve["arrays"][f"curve_{split}"]
        assert c.shape == (64,) and c.sum() == pytest.approx(1.0, abs=1e-4)
    assert curve["meta"]["attack"]["steps"] == 1
    maps = an.analyse(nl, "attention_maps", n_images=3)["arrays"]["attention"]
    assert maps.shape == (3, 8, 8) and np.allclose(maps.sum((1, 2)), 1, atol=1e-4)
    comp = an.analyse(nl, "attention_comparison", other=lin, n=16, n_images=2)
    assert comp["meta"]["kinds"] == ["nonlinear", "linear"] and comp["arrays"]["accuracy"].shape == (2,)
    assert comp["arrays"]["attention_other"].shape == (2, 8, 8)
