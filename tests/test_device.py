"""CUDA correctness: generators and tensors on the device they serve (robustbook.device).

No machine here has a GPU, so two layers: a static check over the package source that
runs everywhere (it catches the class of bug that made CUDA training die at the end of
its first epoch: a CPU torch.Generator handed to an attack on CUDA inputs), and CUDA
tests that skip here and run where a GPU exists."""

import ast
import dataclasses
import json
from pathlib import Path

import pytest
from conftest import tiny_mnist_cfg
import torch

from robustbook import device as device_mod
from robustbook import methods, runs
from robustbook.config import ConfigError

PKG = Path(device_mod.__file__).resolve().parent
RANDOM_FACTORIES = {"rand", "randn", "randint", "randperm"}
NEEDS_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")


# --------------------------------------------------------------------------- static check
def _is_torch(node) -> bool:
    """`torch.x` / `torch.cuda.x` attribute chains."""
    while isinstance(node, ast.Attribute):
        node = node.value
    return isinstance(node, ast.Name) and node.id == "torch"


def _literal_device(node) -> bool:
    """'cpu' / 'cuda:0' / torch.device('cuda') written out (not a variable, not 'meta')."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.split(":")[0] in ("cpu", "cuda")
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "device"
            and _is_torch(node.func) and node.args and _literal_device(node.args[0]))


def device_violations(source: str, filename: str = "<src>") -> list:
    """Places in `source` that make a torch.Generator, draw a random tensor with a generator
    but no explicit device (such a draw lands on the CPU whatever the generator's device),
    or put a tensor on a hard-coded device. Only robustbook/device.py may do the first."""
    out = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call):
            continue
        f, kw = node.func, {k.arg: k.value for k in node.keywords}
        name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
        where = f"{filename}:{node.lineno}"
        if name == "Generator" and (isinstance(f, ast.Name) or _is_torch(f)):
            out.append(f"{where}: torch.Generator outside robustbook.device: use device.generator(device, seed)")
        elif name in RANDOM_FACTORIES and _is_torch(f) and "generator" in kw and "device" not in kw:
            out.append(f"{where}: torch.{name}(generator=...) without device=: pass "
                       "device=device.rng_device(generator) (or the tensor's device)")
        elif _literal_device(node):
            out.append(f"{where}: hard-coded torch.device(...): use device.resolve(...) or device.HOST")
        if "device" in kw and _literal_device(kw["device"]) and (_is_torch(f) or name.startswith("new_")):
            out.append(f"{where}: tensor made on a hard-coded device: use a variable device or device.HOST")
        if name == "cuda" and isinstance(f, ast.Attribute) and not _is_torch(f):
            out.append(f"{where}: .cuda() hard-codes the device: use .to(device)")
        if name == "to" and node.args and _literal_device(node.args[0]):
            out.append(f"{where}: .to(<literal device>): use .to(device) or .cpu()")
    return sorted(set(out))


def test_static_check_finds_the_bugs_it_is_for():
    bad = (
        "import torch\n"
        "g = torch.Generator().manual_seed(0)\n"                       # the probe() bug
        "n = torch.randn(3, generator=g)\n"                            # CPU draw whatever g's device
        "z = torch.zeros(3, device='cuda')\n"
        "w = torch.ones(2, device=torch.device('cpu'))\n"
        "m = model.cuda()\n"
        "x = x.to('cuda:0')\n"
    )
    found = device_violations(bad)
    for line in range(2, 8):
        assert any(v.startswith(f"<src>:{line}:") for v in found), (line, found)
    good = (
        "import torch\n"
        "from robustbook import device as D\n"
        "g = D.generator(x.device, 0)\n"
        "n = torch.randn(3, generator=g, device=D.rng_device(g))\n"
        "z = torch.zeros(3, device=x.device)\n"
        "h = torch.empty(2, device=D.HOST)\n"
        "y = x.cpu()\n"
        "with torch.device('meta'):\n    pass\n"
        "cfg = RunConfig(device='cpu')\n"
    )
    assert device_violations(good) == []


def test_package_makes_generators_and_tensors_only_on_the_served_device():
    found = []
    for path in sorted(PKG.rglob("*.py")):
        if path.name == "device.py" and path.parent == PKG:
            continue
        found += device_violations(path.read_text(), str(path.relative_to(PKG.parent)))
    assert not found, "device bugs waiting for a GPU:\n" + "\n".join(found)


# --------------------------------------------------------------------------- the helper
def test_generator_is_on_the_requested_device_and_seeded():
    g = device_mod.generator("cpu", 7)
    assert g.device == device_mod.HOST
    assert torch.equal(torch.rand(4, generator=g), torch.rand(4, generator=device_mod.generator(device_mod.HOST, 7)))
    assert device_mod.rng_device(None) == device_mod.HOST
    assert device_mod.rng_device(g, "cuda") == device_mod.HOST
    assert device_mod.of(torch.nn.Linear(2, 2)) == device_mod.HOST
    assert device_mod.of(torch.nn.ReLU()) == device_mod.HOST


def test_resolve_names_what_to_do():
    assert device_mod.resolve("cpu") == device_mod.HOST
    assert device_mod.resolve("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="not a device"):
        device_mod.resolve("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device.*'auto' or 'cpu'"):
            device_mod.generator("cuda", 0)


def test_attacks_accept_the_helpers_generator_for_their_inputs():
    from robustbook.attacks import pgd
    from robustbook.transforms import augment, rbs

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    x, y = torch.rand(3, 1, 4, 4), torch.tensor([0, 1, 0])
    a = pgd(model, x, y, 0.1, 0.05, 2, generator=device_mod.generator(x.device, 1))
    b = pgd(model, x, y, 0.1, 0.05, 2, generator=device_mod.generator(x.device, 1))
    assert torch.equal(a, b)
    g1, g2 = device_mod.generator(x.device, 3), device_mod.generator(x.device, 3)
    assert torch.equal(augment(x, "crop_flip", 1, g1), augment(x, "crop_flip", 1, g2))
    assert torch.equal(rbs(x, 2, g1), rbs(x, 2, g2))


def test_checkpoint_rng_states_stay_on_the_host(real_mnist, tmp_path, monkeypatch):
    """Resume loads the checkpoint onto the host (set_rng_state takes only a CPU ByteTensor)."""
    cfg = tiny_mnist_cfg(epochs=2)
    loads = []
    real_load = torch.load

    def spy(path, *a, **kw):
        loads.append((Path(path).name, kw.get("map_location")))
        return real_load(path, *a, **kw)

    real_loss = methods.METHODS["pgd_at"].loss
    calls = {"n": 0}

    def dies_in_epoch_2(*a, **kw):
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt("killed")
        return real_loss(*a, **kw)

    with monkeypatch.context() as m:
        m.setitem(methods.METHODS, "pgd_at", dataclasses.replace(methods.METHODS["pgd_at"], loss=dies_in_epoch_2))
        with pytest.raises(KeyboardInterrupt):
            runs.train(cfg, root=tmp_path)
    ckpt = real_load(tmp_path / cfg.run_id / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert ckpt["rng_cpu"].device == device_mod.HOST and ckpt["rng_cpu"].dtype == torch.uint8
    monkeypatch.setattr(torch, "load", spy)
    runs.train(cfg, root=tmp_path)
    assert ("checkpoint.pt", "cpu") in loads


def test_load_run_puts_the_model_on_the_asked_device(real_mnist, tmp_path):
    cfg = tiny_mnist_cfg(epochs=1)
    runs.train(cfg, root=tmp_path)
    run = runs.load_run(cfg, root=tmp_path, device="cpu")
    assert device_mod.of(run.model) == device_mod.HOST
    with pytest.raises(ConfigError, match="device"):
        runs.load_run(cfg, root=tmp_path, device="gpu")


# --------------------------------------------------------------------------- on a GPU


#: one method per family: plain AT, FP&R (attention + regulariser), AELF (from an ST run), RLFAT (RBS + TRADES)
FAMILIES = {
    "pgd_at": dict(),
    "at_att_reg": dict(dataset="cifar10", model="madry_resnet", model_kw={"filters": [4, 4, 8, 8],
                       "units_per_stage": 1, "attention": "nonlinear"}, lam=0.01, eps=8 / 255, alpha=2 / 255,
                       augment="crop_flip"),
    "aelfs": dict(lam=0.0, beta=0.01, pretrain_epochs=1),
    "rlfat_t": dict(beta=6.0, eta=1.0),
}


@pytest.mark.parametrize("method", sorted(FAMILIES))
def test_cuda_family_configs_are_valid(method):
    """The GPU tests' configs are checked here, so they cannot rot unseen."""
    assert tiny_mnist_cfg(method=method, device="cpu", **FAMILIES[method]).method == method


@NEEDS_CUDA
@pytest.mark.parametrize("method", sorted(FAMILIES))
def test_cuda_smoke_training_two_epochs(method, real_mnist, tmp_path):
    cfg = tiny_mnist_cfg(method=method, device="cuda", **FAMILIES[method])
    run = runs.train(cfg, root=tmp_path)
    assert device_mod.of(run.model).type == "cuda"
    assert [m["epoch"] for m in run.metrics] == [1, 2]
    assert json.loads((run.dir / "env.json").read_text())["device"].startswith("cuda")
    again = runs.load_run(run.dir)  # the run's own device
    assert device_mod.of(again.model).type == "cuda"


@NEEDS_CUDA
@pytest.mark.parametrize("precision", ["fp32", "amp"])
def test_cuda_kill_and_resume_equals_an_uninterrupted_run(precision, real_mnist, tmp_path, monkeypatch):
    cfg = tiny_mnist_cfg(epochs=3, device="cuda", precision=precision)
    full = runs.train(cfg, root=tmp_path / "a")
    real_loss = methods.METHODS["pgd_at"].loss
    calls = {"n": 0}

    def dies_in_epoch_2(*a, **kw):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt("killed")
        return real_loss(*a, **kw)

    with monkeypatch.context() as m:
        m.setitem(methods.METHODS, "pgd_at", dataclasses.replace(methods.METHODS["pgd_at"], loss=dies_in_epoch_2))
        with pytest.raises(KeyboardInterrupt):
            runs.train(cfg, root=tmp_path / "b")
    resumed = runs.train(cfg, root=tmp_path / "b")
    for (k, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k
    assert [r["loss"] for r in resumed.metrics] == [r["loss"] for r in full.metrics]


@NEEDS_CUDA
def test_cuda_evaluation_of_a_suite_runs_on_the_gpu(real_mnist, tmp_path):
    from robustbook import evaluate

    run = runs.train(tiny_mnist_cfg(device="cuda"), root=tmp_path)
    res = evaluate.evaluate(run, "smoke", progress=False)
    assert res["env"]["device"].startswith("cuda")
    assert 0 <= res["results"]["clean"]["accuracy"] <= 1


def test_cpu_model_and_flags_come_from_cpuinfo(monkeypatch):
    from robustbook import device

    info = {"model name": "AMD EPYC 9R14", "flags": "fpu sse2 avx2 fma avx512f avx512_bf16 sha_ni"}
    monkeypatch.setattr(device, "_cpuinfo", info.get)
    assert device.cpu_model() == "AMD EPYC 9R14"
    assert device.cpu_flags() == ["avx2", "avx512f", "avx512_bf16"]
    monkeypatch.setattr(device, "_cpuinfo", lambda field: None)  # no /proc/cpuinfo (macOS, Windows)
    assert device.cpu_model() and device.cpu_flags() == []
