"""Tests of robustbook.evaluate and robustbook.nattack on tiny CPU models (seconds).

Most tests wrap a tiny conv net trained for a second on real MNIST in a hand-made
`runs.Run` (a smoke RunConfig names the test images and the folder), so `evaluate`
runs end to end without training the paper's models; one test trains a smoke run
to check the default transfer partner.
"""

import json
import time

import pytest
from conftest import tiny_mnist_cfg
import torch
import torch.nn.functional as F
from torch import nn

from robustbook import data, runs
from robustbook import evaluate as ev
from robustbook.attacks import pgd
from robustbook.config import RunConfig
from robustbook.nattack import margin_loss, nattack, nattack_accuracy

pytestmark = pytest.mark.usefixtures("one_thread")


class Tiny(nn.Module):
    """A small conv net with the zoo's interface (features / head)."""

    has_attention = False

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 8, 5, stride=2, padding=2), nn.ReLU(),
                                  nn.Conv2d(8, 16, 5, stride=2, padding=2), nn.ReLU(), nn.Flatten(),
                                  nn.Linear(16 * 7 * 7, 32), nn.ReLU())
        self.head = nn.Linear(32, 10)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.features(x))


class ZeroGrad(nn.Module):
    """Gradient masking by construction: the same outputs, zero input gradient."""

    def __init__(self, inner, binarize=False):
        super().__init__()
        self.inner, self.binarize = inner, binarize

    def forward(self, x):
        xd = x.detach()
        if self.binarize:
            xd = xd.round()
        return self.inner(x * 0 + xd)


def _train_tiny(seed, x, y):
    torch.manual_seed(seed)
    model = Tiny()
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(3):
        perm = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), 64):
            idx = perm[i:i + 64]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()






@pytest.fixture(scope="module")
def tiny(one_thread):
    """Two independently trained tiny models (seeds 0 and 1) and 64 MNIST test images."""
    try:
        train = data.load("mnist", "train", n=2048)
        test = data.load("mnist", "test", n=64)
    except data.DatasetNotFound:
        pytest.skip("real MNIST needs ROBUSTBOOK_DATA")
    a, b = _train_tiny(0, train.x, train.y), _train_tiny(1, train.x, train.y)
    return a, b, test.x, test.y


def _run(model, tmp_path, name, **kw):
    cfg = tiny_mnist_cfg(**{"test_size": 64, "epochs": 1, **kw})
    folder = tmp_path / name
    folder.mkdir(parents=True, exist_ok=True)
    return runs.Run(cfg=cfg, dir=folder, model=model)


SMALL = ev.Suite("t", eps=0.1, alpha=0.025, pgd_steps=(2, 5), cw_steps=(3,), n=32, transfer=True,
                 nattack_n=8, nattack_pop=16, nattack_iters=5, shifts=("left",), shift_pixels=4,
                 check_steps=(8,), large_eps=0.5, check_n=32)


# --------------------------------------------------------------------------- suites
def test_suites_are_valid_and_hash_what_changes_numbers():
    for name, s in ev.SUITES.items():
        assert s.name == name and s.ref, name
        assert len(s.hash) == 12
    fpr = ev.SUITES["fpr_cifar"]
    assert fpr.pgd_steps == (5, 20, 100, 200) and fpr.cw_steps == (30, 100) and fpr.kappa == 50
    assert abs(fpr.eps - 8 / 255) < 1e-12 and abs(fpr.alpha - 2 / 255) < 1e-12 and fpr.transfer
    assert ev.SUITES["aelf_wrn"].random_start == (False, True)
    assert ev.SUITES["rlfat"].nattack_n == 1500 and ev.SUITES["rlfat"].nattack_pop == 300
    assert fpr.replace(batch_size=7).hash == fpr.hash  # does not change numbers
    assert fpr.replace(ref="x").hash == fpr.hash
    assert fpr.replace(eps=4 / 255).hash != fpr.hash
    assert fpr.replace(random_start=(False,)).hash != fpr.hash
    assert '"_version"' in fpr.canonical()
    # RLFAT: PGD/CW take the run's training attack (steps 7 on CIFAR-100 / STL-10)
    r = ev.SUITES["rlfat"].resolve(RunConfig(dataset="cifar100", eps=0.03, alpha=0.0075, steps=7))
    assert r.pgd_steps == (7,) and r.cw_steps == (7,) and r.check_steps == (14,) and r.eps == 0.03
    assert not r.match_run
    with pytest.raises(ev.SuiteError, match="alpha"):
        ev.Suite("x", eps=0.1, alpha=(0.01,), pgd_steps=(5, 10))
    with pytest.raises(ev.SuiteError, match="eps"):
        ev.Suite("x", eps=8, alpha=0.01, pgd_steps=(5,))
    with pytest.raises(ValueError, match="unknown suite"):
        ev.get_suite("nope")


# --------------------------------------------------------------------------- attacks
def test_record_steps_equal_separate_runs(tiny):
    model, _, x, y = tiny
    rec, _ = ev.pgd_correct(model, x[:32], y[:32], 0.1, 0.02, [2, 5], seed=3)
    for k in (2, 5):
        sep, _ = ev.pgd_correct(model, x[:32], y[:32], 0.1, 0.02, [k], seed=3)
        assert torch.equal(rec[k], sep[k])
    assert rec[5].float().mean() <= rec[2].float().mean()


def test_nattack_invariants_and_it_lowers_accuracy(tiny):
    model, _, x, y = tiny
    x, y = x[:24], y[:24]
    clean = ev.predict_correct(model, x, y)
    gen = torch.Generator().manual_seed(0)
    res = nattack(model, x, y, 0.3, pop=48, sigma=0.1, lr=0.05, max_iter=30, generator=gen, pool=5)
    assert (res.x_adv - x).abs().max() <= 0.3 + 1e-6
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    assert torch.equal(res.clean_correct, clean)
    assert torch.equal(res.x_adv[~clean], x[~clean]) and (res.iterations[~clean] == 0).all()
    with torch.no_grad():
        wrong = model(res.x_adv).argmax(1) != y
    assert torch.equal(res.fooled, wrong & clean)  # success flags agree with the model
    assert (res.iterations <= 30).all() and (res.queries == res.iterations * 49).all()
    assert res.accuracy <= clean.float().mean() - 0.25  # an undefended model loses accuracy
    # same generator seed, same result; accuracy helper agrees
    again = nattack_accuracy(model, x, y, 0.3, pop=48, sigma=0.1, lr=0.05, max_iter=30,
                             generator=torch.Generator().manual_seed(0), pool=5)
    assert again == res.accuracy
    # loss: 0 once a wrong class is as likely as the true one
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]])
    loss = margin_loss(logits, torch.tensor([0, 0]))
    assert loss[0] == pytest.approx(1.0) and loss[1] == 0


def test_nattack_official_variant_differs_where_built_to():
    """The official RLFAT nattack.py scores every sample against sample 0's best
    wrong-class probability and checks the mean only every 10 iterations."""
    from robustbook.nattack import official_scores

    # two samples of one image, true class 0: sample 0 is confidently right (tiny wrong-class
    # probability), sample 1 is fooled, so its own margin is 0 but its official score is not
    logits = torch.tensor([[10.0, 0.0, 0.0], [1.0, 2.0, 0.0]])
    y = torch.tensor([0, 0])
    ours = margin_loss(logits, y)
    official = official_scores(logits, y, pop=2)[0]
    assert ours[1] == 0 and official[1] > 0
    assert official[0] == pytest.approx(float(ours[0]), abs=1e-5)  # sample 0 itself agrees
    # a linear model fooled by any step towards class 1: ours stops after 1 iteration, the
    # official variant only looks at the mean at iterations 0, 10, 20, ...
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[0.0, 0, 0, 0], [1.0, 1, 1, 1]]))
        model[1].bias.copy_(torch.tensor([2.05, 0.0]))
    x = torch.full((3, 1, 2, 2), 0.5)
    y = torch.zeros(3, dtype=torch.long)
    kw = dict(pop=16, sigma=0.5, lr=2.0, max_iter=40, generator=None)
    a = nattack(model, x, y, 0.3, **{**kw, "generator": torch.Generator().manual_seed(1)})
    b = nattack(model, x, y, 0.3, official=True, **{**kw, "generator": torch.Generator().manual_seed(1)})
    assert a.fooled.all() and b.fooled.all()
    assert (a.iterations < 10).all() and (b.iterations % 10 == 0).all() and (b.iterations >= 10).all()


def test_autoattack_and_pgd_agree_on_an_undefended_model(tiny):
    model, _, x, y = tiny
    x, y = x[:48], y[:48]
    flags, _ = ev.pgd_correct(model, x, y, 0.3, 0.03, [20])
    x_aa = ev._autoattack(model, x, y, 0.3, "cheap", seed=0, batch_size=48)
    assert (x_aa - x).abs().max() <= 0.3 + 1e-5 and x_aa.min() >= 0 and x_aa.max() <= 1
    acc_aa = ev.predict_correct(model, x_aa, y).float().mean().item()
    acc_pgd = flags[20].float().mean().item()
    assert acc_pgd <= 0.05 and acc_aa <= 0.05
    assert model.training is False and all(p.requires_grad for p in model.parameters())


# --------------------------------------------------------------------------- evaluate
def test_evaluate_end_to_end_with_transfer_and_cache(tiny, tmp_path, monkeypatch):
    a, b, _, _ = tiny
    target = _run(a, tmp_path, "target")
    source = _run(b, tmp_path, "source", seed=1)
    t0 = time.perf_counter()
    res = ev.evaluate(target, SMALL, source=source, progress=False)
    first = time.perf_counter() - t0
    r = res["results"]
    expected = {"clean", "pgd-2", "pgd-5", "pgd-8", "cw-3", "transfer/pgd-2", "transfer/pgd-5", "transfer/cw-3",
                "nattack", "shift-left/clean", "shift-left/pgd-2", "check/large-eps"}
    assert set(r) == expected
    assert r["pgd-8"]["role"] == "check" and r["pgd-5"]["role"] == "table"
    assert all(e["n"] == 32 for k, e in r.items() if k != "nattack") and r["nattack"]["n"] == 8
    assert r["pgd-5"]["evidence"]["eps"] == 0.1 and r["pgd-5"]["evidence"]["steps"] == 5
    assert r["clean"]["evidence"]["images"].startswith("first 32 of mnist test: 64 of 10000")
    assert r["cw-3"]["evidence"]["kappa"] == 50.0 and r["cw-3"]["attack"] == "cw"
    assert r["transfer/pgd-5"]["evidence"]["source_run"] == "source" and res["transfer_source"] == "source"
    assert r["clean"]["accuracy"] > 0.8 and r["pgd-5"]["accuracy"] < r["clean"]["accuracy"]
    assert ev.correct_flags(r["pgd-5"]).sum() == round(32 * r["pgd-5"]["accuracy"])
    assert {c["check"] for c in res["checks"]} >= {"pgd_monotone", "large_eps", "transfer_vs_whitebox",
                                                   "nattack_vs_whitebox", "clean_upper_bound"}
    path = ev.result_path(target, SMALL, source=source)
    assert path.parent == target.dir / "eval" and path.name.startswith("t-") and path.exists()
    assert json.loads(path.read_text()) == res
    assert list((source.dir / "adv").glob("*.pt"))  # crafted images stored under the SOURCE run
    # cached: nothing is recomputed
    monkeypatch.setattr(ev, "pgd_correct", lambda *a, **k: pytest.fail("recomputed"))
    monkeypatch.setattr(ev.attacks_mod, "pgd", lambda *a, **k: pytest.fail("recomputed"))
    t0 = time.perf_counter()
    assert ev.evaluate(target, SMALL, source=source) == res
    assert time.perf_counter() - t0 < 0.2 * first
    monkeypatch.undo()
    # a second target reuses the images already crafted on the source (no attack on the source)
    calls = []
    real = ev.attacks_mod.pgd
    monkeypatch.setattr(ev.attacks_mod, "pgd", lambda m, *a, **k: calls.append(m) or real(m, *a, **k))
    other = _run(a, tmp_path, "target2", lr=0.01)  # another "run" on the same test images
    res2 = ev.evaluate(other, SMALL.replace(nattack_n=0, shifts=(), large_eps=0.0), source=source)
    assert b not in calls and res2["results"]["transfer/pgd-5"]["evidence"]["crafted_now"] == 0
    assert res2["results"]["transfer/pgd-5"]["correct"] == r["transfer/pgd-5"]["correct"]


def test_an_image_attacked_for_a_transfer_set_is_not_attacked_again_for_white_box(tiny, tmp_path, monkeypatch):
    """The per-image attack store (`attacked`): evaluating A with transfer source B crafts B's
    attack on A's clean-correct images; B's own white-box evaluation then attacks only the
    images A did not need, and its flags match a store filled in one go (same random start
    per image whatever the batch)."""
    a, b, _, _ = tiny
    suite = ev.Suite("share", eps=0.1, alpha=0.025, pgd_steps=(2, 4), n=48, transfer=True)
    run_a, run_b = _run(a, tmp_path, "A"), _run(b, tmp_path, "B", seed=1)
    ev.evaluate(run_a, suite, source=run_b)
    calls = []
    real = ev.attacks_mod.pgd
    monkeypatch.setattr(ev.attacks_mod, "pgd", lambda m, x, *args, **k: calls.append((m, len(x))) or real(m, x, *args, **k))
    res_b = ev.evaluate(run_b, suite.replace(transfer=False))["results"]
    clean_a = ev.correct_flags(ev.evaluate(run_a, suite, source=run_b)["results"]["clean"])
    clean_b = ev.correct_flags(res_b["clean"])
    attacked_now = sum(n for m, n in calls if m is b)
    assert attacked_now == int((clean_b & ~clean_a).sum()) < int(clean_b.sum())
    monkeypatch.undo()
    fresh = ev.evaluate(_run(b, tmp_path, "B-fresh", seed=1), suite.replace(transfer=False))["results"]
    for key in ("pgd-2", "pgd-4"):
        assert (ev.correct_flags(res_b[key]) == ev.correct_flags(fresh[key])).mean() >= 0.95, key
    assert "attacked now" in res_b["pgd-4"]["evidence"]["timing"]


def test_an_interrupted_evaluation_resumes_and_counts_every_process_time(tiny, tmp_path, monkeypatch):
    """Killed in its N-Attack section, an evaluation resumes after its last finished section: the
    record equals an uninterrupted one's, and its `seconds_total` includes the killed process's
    time (a record once held only the last process's, a third of what a resumed MNIST evaluation
    cost; `spent_seconds` bounds such records by their sections)."""
    a, _, _, _ = tiny
    suite = SMALL.replace(transfer=False, cw_steps=(), shifts=(), large_eps=0.0)
    run = _run(a, tmp_path, "killed")
    real = ev._nattack

    def killed(*args, **kw):
        time.sleep(0.3)  # time spent in the killed process, after the white-box sections
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(ev, "_nattack", killed)
    with pytest.raises(KeyboardInterrupt):
        ev.evaluate(run, suite)
    path = ev.result_path(run, suite)
    partial = json.loads(path.with_name(path.stem + ".partial.json").read_text())
    assert set(partial["results"]) == {"clean", "pgd-2", "pgd-5", "pgd-8"} and partial["seconds_spent"] > 0
    monkeypatch.setattr(ev, "_nattack", real)
    monkeypatch.setattr(ev.attacks_mod, "pgd", lambda *a, **k: pytest.fail("a finished section was redone"))
    res = ev.evaluate(run, suite)
    assert res["seconds_resumed"] == pytest.approx(partial["seconds_spent"], abs=0.01)
    assert res["seconds_total"] > res["seconds_resumed"] >= ev.sections_seconds(partial["results"])
    assert ev.spent_seconds(res) == res["seconds_total"]
    assert not path.with_name(path.stem + ".partial.json").exists()
    monkeypatch.undo()
    fresh = ev.evaluate(_run(a, tmp_path, "whole"), suite)
    assert {k: e["correct"] for k, e in res["results"].items()} == {k: e["correct"] for k, e in fresh["results"].items()}
    assert fresh["seconds_resumed"] == 0.0
    # an older record of a resumed evaluation: its sections (one PGD run shared by its recorded
    # step counts, counted once) bound its cost from below
    old = {**res, "seconds_total": 0.01}
    pgd_s = res["results"]["pgd-5"]["seconds"]
    assert res["results"]["pgd-2"]["seconds"] == pgd_s
    assert ev.spent_seconds(old) == pytest.approx(sum({e["seconds"] for e in res["results"].values()}))
    assert ev.spent_seconds(old) < sum(e["seconds"] for e in res["results"].values())


def test_skip_misclassified_attacks_only_correct_images(tiny, tmp_path, monkeypatch):
    a, b, _, _ = tiny
    monkeypatch.setenv("ROBUSTBOOK_FAST", "0")
    # no random start: each image's attack is deterministic, so the convention is the only difference
    suite = ev.Suite("skip", eps=0.15, alpha=0.03, pgd_steps=(3,), cw_steps=(3,), random_start=(False,), n=64,
                     transfer=True, large_eps=0.5, check_n=64)
    source = _run(b, tmp_path, "src", seed=1)
    sizes = []
    real = ev.attacks_mod.pgd
    monkeypatch.setattr(ev.attacks_mod, "pgd", lambda m, x, *a, **k: sizes.append((m, len(x))) or real(m, x, *a, **k))
    skip = ev.evaluate(_run(a, tmp_path, "skip"), suite, source=source)["results"]
    every = ev.evaluate(_run(a, tmp_path, "all"), suite.replace(skip_misclassified=False), source=source)["results"]
    clean = ev.correct_flags(skip["clean"])
    assert 0 < clean.sum() < 64  # some images are misclassified, so skipping saves work
    attacked_sizes = {n for m, n in sizes if m is a}
    assert int(clean.sum()) in attacked_sizes and 64 in attacked_sizes  # skip attacks the correct ones only
    for key in ("pgd-3-nostart", "cw-3-nostart", "transfer/pgd-3-nostart", "check/large-eps"):
        s, e = ev.correct_flags(skip[key]), ev.correct_flags(every[key])
        assert not (s & ~clean).any(), key  # robust implies clean-correct
        assert (s == (e & clean)).mean() >= 0.95, key  # same per-image attack up to rounding
        assert "classified correctly" in skip[key]["evidence"]["attacked"]
        assert every[key]["evidence"]["adv_correct_clean_wrong"] == int((e & ~clean).sum())
    assert suite.hash != suite.replace(skip_misclassified=False).hash


def test_stop_when_fooled_suite(tiny, tmp_path, monkeypatch):
    a, _, x, y = tiny
    monkeypatch.setenv("ROBUSTBOOK_FAST", "0")
    suite = ev.Suite("stop", eps=0.2, alpha=0.03, pgd_steps=(4, 8), random_start=(False,), n=64, shifts=("up",),
                     shift_pixels=6, large_eps=0.5, check_n=64)
    # suites without the field keep their hash (and their records); the field and the shifted-set rule are hashed
    assert "stop_when_fooled" not in ev.SUITES["fpr_cifar"].canonical()
    assert suite.replace(stop_when_fooled=True).hash != suite.hash
    assert suite.hash != suite.replace(skip_misclassified=False).hash
    with pytest.raises(ev.SuiteError, match="stop_when_fooled=False with transfer=True"):
        suite.replace(stop_when_fooled=True, transfer=True)
    calls = []
    real = ev.attacks_mod.pgd
    monkeypatch.setattr(ev.attacks_mod, "pgd", lambda *a, **k: calls.append(k.get("stop_when_fooled")) or real(*a, **k))
    last = ev.evaluate(_run(a, tmp_path, "last"), suite)["results"]
    assert calls and not any(calls)
    calls.clear()
    first = ev.evaluate(_run(a, tmp_path, "first"), suite.replace(stop_when_fooled=True))["results"]
    assert len(calls) >= 3 and all(calls)  # white box, shifted set and large-eps check all stop early
    for key in ("pgd-4-nostart", "pgd-8-nostart", "shift-up/pgd-4-nostart", "check/large-eps"):
        f, l = ev.correct_flags(first[key]), ev.correct_flags(last[key])
        assert not (f & ~l).any(), key  # an image robust to every iterate is robust to the last one
        assert first[key]["evidence"]["stop_when_fooled"] is True and "stop_when_fooled" not in last[key]["evidence"]
    assert ev.correct_flags(first["pgd-8-nostart"]).sum() < ev.correct_flags(first["clean"]).sum()
    # a shifted set is attacked on its own clean-correct images
    shifted_clean = ev.correct_flags(first["shift-up/clean"])
    assert shifted_clean.sum() < 64 and not (ev.correct_flags(first["shift-up/pgd-4-nostart"]) & ~shifted_clean).any()
    assert "classified correctly" in first["shift-up/pgd-4-nostart"]["evidence"]["attacked"]
    # and its entries are the library's `shifted_correct` on the same images
    atk = dict(eps=0.2, alpha=0.03, steps=4, random_start=False, stop_when_fooled=True)
    want = ev.shifted_correct(a, x, y, ["up"], 6, atk, skip_misclassified=True)["up"]
    assert (shifted_clean == want["clean"].numpy()).all()
    assert (ev.correct_flags(first["shift-up/pgd-4-nostart"]) == want["adv"].numpy()).all()
    # the large-eps check after the shifted sets attacks the images classified correctly unshifted
    n_clean = int(ev.correct_flags(first["clean"]).sum())
    assert n_clean != int(shifted_clean.sum())
    assert first["check/large-eps"]["evidence"]["attacked"].startswith(f"the {n_clean} of 64 ")


def test_transfer_set_is_valid_and_checked_against_the_images(tiny, tmp_path):
    a, b, x, y = tiny
    source = _run(b, tmp_path, "src", seed=1)
    suite = ev.Suite("tr", eps=0.1, alpha=0.025, pgd_steps=(3,), n=32)
    out = ev.craft_transfer(source, suite, torch.arange(16))
    xa = out["x_adv"]["pgd-3"]
    assert (xa - x[:16]).abs().max() <= 0.1 + 1e-6 and xa.min() >= 0 and xa.max() <= 1
    assert out["attacked_now"]["pgd-3"] == 16
    assert ev.craft_transfer(source, suite, torch.arange(16))["attacked_now"]["pgd-3"] == 0
    # other images (e.g. the clean-correct images of another target) go into the same store
    other = ev.craft_transfer(source, suite, torch.arange(8, 32))
    assert other["attacked_now"]["pgd-3"] == 16 and other["path"] == out["path"]
    assert torch.equal(other["x_adv"]["pgd-3"][:8], xa[8:])
    with pytest.raises(IndexError, match=r"idx must index the 32 evaluated test images .*got values in 30\.\.40"):
        ev.craft_transfer(source, suite, torch.arange(30, 41))
    # a source with other test images (here another input size) is refused, not used
    bigger = _run(b, tmp_path, "src-32px", seed=1, input_size=32)
    with pytest.raises(ValueError, match="other test images"):
        ev.evaluate(_run(a, tmp_path, "target"), suite.replace(transfer=True), source=bigger)


def test_checklist_flags_gradient_masking(tiny, tmp_path):
    a, _, _, _ = tiny
    # zero input gradient: PGD (no random start) cannot move, N-Attack (score based) can
    masked = _run(ZeroGrad(a), tmp_path, "masked")
    suite = ev.Suite("m", eps=0.3, alpha=0.05, pgd_steps=(5,), random_start=(False,), n=16, nattack_n=16,
                     nattack_pop=48, nattack_iters=30, nattack_lr=0.05)
    res = ev.evaluate(masked, suite)
    r = res["results"]
    assert r["pgd-5-nostart"]["accuracy"] == r["clean"]["accuracy"]
    failed = {c["check"] for c in res["checks"] if c["passed"] is False}
    assert "nattack_vs_whitebox" in failed
    assert "nattack_vs_whitebox" in res["doubts"]["pgd-5-nostart"]
    line = next(l for l in ev.format_result(res).splitlines() if l.strip().startswith("pgd-5-nostart"))
    assert "doubt: nattack_vs_whitebox" in line
    # binarised input and zero gradient: even a huge eps leaves accuracy far from 0
    binar = _run(ZeroGrad(a, binarize=True), tmp_path, "binar")
    res = ev.evaluate(binar, ev.Suite("b", eps=0.3, alpha=0.05, pgd_steps=(2, 5), n=16, large_eps=0.5, check_n=16))
    assert res["results"]["check/large-eps"]["accuracy"] > 0.5
    assert "large_eps" in res["doubts"]["pgd-5"] and "large_eps" in res["doubts"]["pgd-2"]
    # an honest model passes every applicable check
    honest = _run(a, tmp_path, "honest")
    res = ev.evaluate(honest, ev.Suite("h", eps=0.3, alpha=0.05, pgd_steps=(2, 10), n=16, large_eps=0.6, check_n=16))
    assert all(c["passed"] is not False for c in res["checks"]), res["checks"]
    assert res["doubts"] == {}
    # a stored record's checklist is judged again on load: its own checks are not trusted
    suite = ev.Suite("h", eps=0.3, alpha=0.05, pgd_steps=(2, 10), n=16, large_eps=0.6, check_n=16)
    path = ev.result_path(honest, suite)
    path.write_text(json.dumps({**res, "checks": [], "doubts": {"pgd-10": ["made up"]}}))
    for again in (ev.load_result(honest, suite), ev.evaluate(honest, suite)):
        assert again["doubts"] == {} and again["checks"] == res["checks"]


def test_smoke_suite_on_a_trained_run_with_default_partner(real_mnist):
    cfg = tiny_mnist_cfg(test_size=64, epochs=1)
    run = runs.train(cfg)
    suite = ev.SUITES["smoke"].replace(autoattack_n=8, nattack_iters=3, check_n=16, n=16)
    res = ev.evaluate(run, suite)
    partner = ev.partner_config(cfg)
    assert partner.seed == 1 and res["transfer_source"] == partner.run_id
    assert (runs.run_dir(partner) / "model.pt").exists()  # the partner was trained
    assert "autoattack" in res["results"] and res["results"]["autoattack"]["n"] == 8
    assert any(c["check"] == "autoattack_vs_pgd" for c in res["checks"])
    assert ev.load_result(run, suite) == res


def test_test_set_matches_prepare_data(real_mnist):
    for cfg in (tiny_mnist_cfg(test_size=64, epochs=1),
                tiny_mnist_cfg(test_size=64, epochs=1, input_size=32, model="cnn_b", model_kw={"in_channels": 1})):
        test = ev.test_set(cfg)
        ref = runs.prepare_data(cfg)[1]
        assert torch.equal(test.x, ref.x) and torch.equal(test.y, ref.y) and test.describe() == ref.describe()


def test_long_check_rows_run_on_the_first_check_n_images(tiny, tmp_path):
    """Check steps below the longest table row are recorded free on every image; longer ones
    attack only the first check_n images (their own store), never the transfer set; suites
    without check rows keep their hash (FP&R CIFAR's evaluations stay valid)."""
    a, _, _, _ = tiny
    suite = ev.Suite("c", eps=0.1, alpha=0.025, pgd_steps=(3,), check_steps=(2, 6), n=32, check_n=12,
                     skip_misclassified=False)
    specs = ev._whitebox_specs(suite)
    assert [(s["table"], s["check"], s.get("first")) for s in specs] == [([3], [2], None), ([], [6], 12)]
    run = _run(a, tmp_path, "c")
    r = ev.evaluate(run, suite)["results"]
    assert r["pgd-3"]["n"] == r["pgd-2"]["n"] == 32 and r["pgd-2"]["role"] == "check"
    assert r["pgd-6"]["n"] == 12 and r["pgd-6"]["role"] == "check"
    assert r["pgd-6"]["evidence"]["images"].startswith("first 12 of")
    stores = [torch.load(p, weights_only=True) for p in (run.dir / "adv").glob("ce-*.pt")]
    store = [st for st in stores if 6 in st["correct"]][0]
    assert int(store["have"].sum()) == 12 and not store["have"][12:].any()
    assert '"_check_rows"' in suite.canonical() and '"_check_rows"' not in ev.SUITES["fpr_cifar"].canonical()
    assert ev.SUITES["fpr_cifar"].hash == "434401f19b47"  # the committed FP&R Table 2 evaluations' suite


def test_checklist_rules_on_synthetic_results():
    def entry(acc, attack="pgd", steps=5, role="table", n=100, loss="ce", eps=0.03, last=False):
        flags = torch.arange(n) < round(acc * n)
        flags = flags.flip(0) if last else flags
        evid = {"eps": eps, "alpha": 0.01, "steps": steps, "random_start": True, "loss": loss}
        return ev._entry(flags, 0.0, role, attack, evid)

    suite = ev.Suite("s", eps=0.03, alpha=0.01, pgd_steps=(5, 20), tol=0.01, aa_tol=0.03)
    base = {"clean": entry(0.8, "clean"), "pgd-5": entry(0.5, steps=5), "pgd-20": entry(0.45, steps=20)}

    def failed(results):
        return {c["check"]: c["casts_doubt_on"] for c in ev.masking_checks(results, suite) if c["passed"] is False}

    assert failed(base) == {}
    # more steps, higher accuracy: doubt on the longer run
    assert failed({**base, "pgd-20": entry(0.55, steps=20)}) == {"pgd_monotone": ["pgd-20"]}
    # AutoAttack far below the strongest PGD: doubt on the final PGD row only (PGD-5 is merely weak)
    assert failed({**base, "autoattack": entry(0.30, "autoattack", role="check")}) == {"autoattack_vs_pgd": ["pgd-20"]}
    # AutoAttack within aa_tol below: fine; AutoAttack clearly above the strongest PGD: AutoAttack is doubtful
    assert failed({**base, "autoattack": entry(0.43, "autoattack", role="check")}) == {}
    assert failed({**base, "autoattack": entry(0.50, "autoattack", role="check")}) == \
        {"autoattack_vs_pgd_not_weaker": ["autoattack"]}
    # transfer stronger than white box: doubt on the white-box row
    assert failed({**base, "transfer/pgd-5": entry(0.40, "transfer")}) == {"transfer_vs_whitebox": ["pgd-5"]}
    assert failed({**base, "check/large-eps": entry(0.2, role="check", steps=20)})["large_eps"] == ["pgd-20", "pgd-5"]
    # the large-eps PGD alone leaves the last 20 images, which PGD-20 at the smaller eps broke:
    # no image survives both, so the check passes and says why (a saturated CE loss, not masking)
    big = {**base, "check/large-eps": entry(0.2, role="check", steps=20, eps=0.3, last=True)}
    assert failed(big) == {}
    detail = next(c["detail"] for c in ev.masking_checks(big, suite) if c["check"] == "large_eps")
    assert "accuracy 0.2000; 0.0000 counting the examples that pgd-20, pgd-5 found" in detail
    # an attack at a larger eps than the check's proves nothing about its ball
    wide = {**big, "pgd-20": entry(0.45, steps=20, eps=0.5), "pgd-5": entry(0.5, steps=5, eps=0.5)}
    assert failed(wide)["large_eps"] == ["pgd-20", "pgd-5"]
    # an image broken by neither attack still counts
    assert failed({**base, "check/large-eps": entry(0.6, role="check", steps=20, eps=0.3, last=True)})["large_eps"]
    # a check row on the first 20 images only is compared with the table row on those images
    # (pgd-20 is right on all of them): 0.9 there is no rise, though it is above 0.45 overall
    sub = {**base, "pgd-40": entry(0.9, steps=40, role="check", n=20)}
    assert failed(sub) == {}
    mono = [c for c in ev.masking_checks(sub, suite) if c["check"] == "pgd_monotone" and "pgd-40" in c["detail"]]
    assert "pgd-20 1.0000 -> pgd-40 0.9000 on the first 20 images" in mono[0]["detail"]
    # ... and 2 images of 20 broken only by the longer attack do not show that PGD-20 is far
    # from converged (lower bound below tol); 15 images of 100 do: doubt on the table's row
    conv = [c for c in ev.masking_checks(sub, suite) if c["check"] == "pgd_converged"]
    assert conv[0]["passed"] and "fall 0.1000" in conv[0]["detail"]
    assert failed({**base, "pgd-40": entry(0.30, steps=40, role="check")}) == {"pgd_converged": ["pgd-20"]}
    assert failed({**base, "pgd-40": entry(0.44, steps=40, role="check")}) == {}
    # no longer attack than the table's: nothing to compare
    assert [c["passed"] for c in ev.masking_checks(base, suite) if c["check"] == "pgd_converged"] == [None]
