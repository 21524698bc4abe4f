"""Speed benchmark of the attack, training and evaluation paths (``make bench``).

    python -m robustbook.bench                       # full run (~15 min on 2 CPU cores)
    python -m robustbook.bench --quick               # small repeats, a fast check
    python -m robustbook.bench --models narrow,mnist_cnn --out data/bench/mine.json

Everything runs side by side in ONE process and one run, interleaved: each
repeat times every variant once, in turn, so a burst of load from other jobs
hits all variants alike; the reported number is the median over repeats, and
every sample keeps the machine's 1-minute load average and this process' CPU
utilisation (CPU seconds / wall seconds: below the thread count when other
jobs take the cores).

Sections (per model, batch 128 by default):

``pgd``    images/s of PGD (eps, step size, steps, uniform random start) for
           ``ours_exact_fp32`` (``attacks.pgd`` as called by default, bit-for-bit
           torchattacks' arithmetic), ``ours_fp32`` (our fastest fp32 path,
           ``robustbook.speed.fast()``: channels_last and BatchNorm folded into
           the convs of an attack copy), ``ours_bf16`` (the same under
           ``torch.autocast`` bf16 on CPU / CUDA), and ``torchattacks_fp32`` /
           ``torchattacks_bf16`` (``torchattacks.PGD``, same settings).
           ``agreement`` compares the predictions after fp32 and bf16 attacks
           from the same random start.
``train``  images/s of one optimizer step of ``pgd_at``, ``trades`` and
           ``rlfat_p`` through the training loop's code path
           (``ours_fp32``/``ours_bf16``), and of a textbook fp32 eager loop
           for ``pgd_at`` (``naive_fp32``: model.eval(), PGD with the
           parameters requiring grad and a clone per step, model.train(),
           forward, backward, step, ``loss.item()``).
``eval``   the evaluation table of FP&R CIFAR (clean, PGD 5/20/100/200, CW
           30/100) on one batch, once as separate runs per row and once with
           ``record_steps`` (one PGD and one CW run); the tables must be equal.
``campaign`` images/s of one optimizer step of every distinct training config of
           the `cpu` campaign's experiments (``CAMPAIGN_KEYS``; seed 0 of each
           row, exactly as presets builds it: model, method, attack and its
           BatchNorm mode, batch size, precision), interleaved, with the
           epoch and run seconds they predict: what each row of a table
           costs relative to its peers on this machine.
``stop``   PGD with ``stop_when_fooled`` (an image is frozen at the first iterate
           that fools the model) against the plain attack (last iterate), on
           the stored weights of the runs ``stop_runs`` (default: a local
           naturally trained MNIST run and a Madry CIFAR-10 run) and their own
           test images, with ``STOP_ATTACK`` (``aelf_mnist``'s PGD-16 on MNIST,
           ``fpr_cifar``'s PGD-20 on CIFAR-10): seconds and forward passes
           (image-steps) of both, accuracy of both, and the images on which
           they disagree.
``data``   images/s of the tensor-resident batch iterator with crop+flip
           against a ``DataLoader`` over a ``TensorDataset`` with per-image
           transforms.
``flops``  FLOPs of a PGD step (forward + input gradient) and of a training
           step counted with ``torch.utils.flop_counter``; with the timings
           they give achieved GFLOP/s, against the ``ceiling``: this machine's
           measured 2048x2048 matmul GFLOP/s in fp32 and bf16.

Results go to a JSON file (default ``data/bench/latest.json``) together with
the machine (CPU model, cores, threads, torch version, CUDA device);
:func:`summary` turns one or more such files into the table of the book's
Performance page.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as _dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from . import __version__
from . import attacks
from . import data as data_mod
from . import device as device_mod
from . import files
from . import methods as methods_mod
from . import models as models_mod
from . import runs as runs_mod
from .config import RunConfig

try:  # the fast paths (absent in the code the "before" numbers were taken with)
    from . import speed
except ImportError:  # pragma: no cover
    speed = None

__all__ = ["MODELS", "run", "summary", "campaign_table", "campaign_configs", "compare", "machine_line", "main", "machine_info", "matmul_gflops"]

BENCH_DIR = data_mod.REPO_ROOT / "data" / "bench"

#: the papers' models: registry name, kwargs, dataset, input shape, attack eps and step size
MODELS: Dict[str, dict] = {
    "mnist_cnn": dict(model="madry_mnist_cnn", kw={}, dataset="mnist", shape=(1, 28, 28),
                      eps=0.3, alpha=0.01, paper="Madry MNIST CNN (FP&R sec. 4.1)"),
    "cnn_b": dict(model="cnn_b", kw={}, dataset="cifar10", shape=(3, 32, 32),
                  eps=8 / 255, alpha=2 / 255, paper="CNN_B (AELF Table 1)"),
    "narrow": dict(model="madry_resnet", kw={"filters": "narrow"}, dataset="cifar10", shape=(3, 32, 32),
                   eps=8 / 255, alpha=2 / 255, paper="Madry ResNet [16,16,32,64] (FP&R sec. 4.2)"),
    "wide3": dict(model="madry_resnet", kw={"filters": "wide3"}, dataset="cifar10", shape=(3, 32, 32),
                  eps=8 / 255, alpha=2 / 255, paper="Madry ResNet 3x wide [16,48,96,192] (FP&R sec. 4.2)"),
    # a few-kFLOP stand-in with BatchNorm and residual units, for tests
    "tiny": dict(model="madry_resnet", kw={"filters": [4, 4, 8, 8], "units_per_stage": 1}, dataset="cifar10",
                 shape=(3, 32, 32), eps=8 / 255, alpha=2 / 255, paper="test model"),
}
DEFAULT_MODELS = ("mnist_cnn", "cnn_b", "narrow", "wide3")
TRAIN_METHODS = ("pgd_at", "trades", "rlfat_p")
#: FP&R CIFAR evaluation table (evaluate.SUITES['fpr_cifar']): PGD 5/20/100/200 and CW 30/100
EVAL_PGD = (5, 20, 100, 200)
#: experiments whose cpu-profile training configs the ``campaign`` section times
CAMPAIGN_KEYS = ("fpr_table2", "fpr_table6", "fpr_table1", "aelf_table2")
EVAL_CW = (30, 100)


# --------------------------------------------------------------------------- machine
def _git_commit() -> Optional[str]:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=data_mod.REPO_ROOT,
                             capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=data_mod.REPO_ROOT,
                               capture_output=True, text=True, timeout=5)
        return (out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")) or None
    except Exception:
        return None


def machine_info(device: torch.device) -> dict:
    """What the benchmark ran on."""
    info = {
        "cpu": device_mod.cpu_model(),
        "cpu_flags": device_mod.cpu_flags(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "device": str(device),
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "python": platform.python_version(),
        "robustbook": __version__,
        "git_commit": _git_commit(),
        "hostname": platform.node(),
    }
    try:
        import torchattacks

        info["torchattacks"] = torchattacks.__version__
    except Exception:
        info["torchattacks"] = None
    return info


# --------------------------------------------------------------------------- timing
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _load() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # pragma: no cover
        return float("nan")


def interleaved(fns: Dict[str, Callable[[], object]], repeats: int, device: torch.device,
                warmup: int = 1, log: Optional[Callable[[str], None]] = None) -> Dict[str, dict]:
    """Time every callable ``repeats`` times, interleaved, after ``warmup`` untimed
    rounds; odd rounds run in reverse order (A B C, C B A, ...), so a slow drift of the
    machine hits every variant alike.  Returns name -> {median, seconds, load, cpu_util}."""
    for _ in range(warmup):
        for f in fns.values():
            f()
            _sync(device)
    out = {k: {"seconds": [], "load": [], "cpu_util": []} for k in fns}
    for r in range(repeats):
        for k, f in (reversed(list(fns.items())) if r % 2 else fns.items()):
            _sync(device)
            c0, t0 = time.process_time(), time.perf_counter()
            f()
            _sync(device)
            wall = time.perf_counter() - t0
            cpu = time.process_time() - c0
            out[k]["seconds"].append(round(wall, 5))
            out[k]["load"].append(_load())
            out[k]["cpu_util"].append(round(cpu / wall, 3) if wall > 0 else None)
            if log:
                log(f"    {k:<22} {wall:8.3f} s  (load {out[k]['load'][-1]:.2f}, cpu {out[k]['cpu_util'][-1]})")
    for k in out:
        out[k]["median"] = statistics.median(out[k]["seconds"])
    return out


def matmul_gflops(device: torch.device, dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """Best-of-``repeats`` GFLOP/s of an n x n matmul (the hardware ceiling we compare to)."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a @ b
    _sync(device)
    best = math.inf
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def conv_gflops(device: torch.device, dtype: torch.dtype, repeats: int = 5, batch: int = 64,
                channels: int = 256, size: int = 32) -> float:
    """Best-of-``repeats`` GFLOP/s of a large dense 3x3 convolution in channels_last (oneDNN /
    cuDNN reach more than torch's matmul with it; on the benchmark machine ~208 vs ~157)."""
    x = torch.randn(batch, channels, size, size, device=device).to(dtype)
    w = torch.randn(channels, channels, 3, 3, device=device).to(dtype)
    x, w = x.contiguous(memory_format=torch.channels_last), w.contiguous(memory_format=torch.channels_last)
    F.conv2d(x, w, padding=1)
    best = math.inf
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        F.conv2d(x, w, padding=1)
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * batch * channels * channels * 9 * size * size / best / 1e9


# --------------------------------------------------------------------------- helpers
def _autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision == "amp":
        return torch.autocast(device.type, dtype=torch.float16)
    raise ValueError(f"unknown precision {precision!r}")


def _low(device: torch.device) -> Optional[str]:
    """The reduced precision benchmarked on this device: bf16 (CPU, and CUDA with bf16), else fp16
    AMP; None on a CPU without bf16 instructions (`device.slow_bf16`: a
    2048 bf16 matmul takes a minute there, and nobody would train that way)."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return "amp"
    if device_mod.slow_bf16(device):
        return None
    return "bf16"


def _fast():
    """Our fastest fp32 path (``speed.fast()``), or nothing in code without it."""
    return speed.fast() if speed is not None else contextlib.nullcontext()


def _generator(device: torch.device, seed: int) -> torch.Generator:
    return device_mod.generator(device, seed)


def _find_weights(spec: dict) -> Optional[tuple]:
    """(state_dict, description) of a stored run with this model, if the run store has one."""
    root = runs_mod.runs_root()
    if not root.exists():
        return None
    want_kw = dict(sorted(spec["kw"].items()))
    for folder in sorted(root.iterdir()):
        try:
            cfg = json.loads((folder / "config.json").read_text())
        except (OSError, ValueError):
            continue
        if cfg.get("model") != spec["model"] or dict(sorted(cfg.get("model_kw", {}).items())) != want_kw:
            continue
        if cfg.get("dataset") != spec["dataset"]:
            continue
        try:
            if (folder / "model.pt").exists():
                return torch.load(folder / "model.pt", map_location="cpu", weights_only=True), f"run {folder.name} (final)"
            if (folder / "checkpoint.pt").exists():
                ck = torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=True)
                return ck["model"], f"run {folder.name} (checkpoint, epoch {ck.get('epoch')})"
        except Exception:
            continue
    return None


def _set_bn_stats(model: nn.Module, x: torch.Tensor) -> None:
    """Running BatchNorm statistics of x (cumulative average), so eval mode is realistic."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    with torch.no_grad():
        for i in range(0, len(x), 128):
            model(x[i:i + 128])
    for bn, mom in zip(bns, saved):
        bn.momentum = mom
    model.eval()


def _setup_model(name: str, device: torch.device, x_stats: torch.Tensor, use_stored: bool = True):
    spec = MODELS[name]
    torch.manual_seed(0)
    num_classes = data_mod.DATASETS[spec["dataset"]][1]
    model = models_mod.build(spec["model"], num_classes, **spec["kw"])
    found = _find_weights(spec) if use_stored else None
    if found is not None:
        model.load_state_dict(found[0])
        weights = found[1]
    else:
        weights = "random init, BatchNorm statistics of the benchmark images"
        _set_bn_stats(model, x_stats)
    return model.to(device).eval(), weights


def _images(spec: dict, n: int, device: torch.device, seed: int = 0):
    """n test images (real if the dataset is available, else uniform noise) and labels."""
    try:
        ds = data_mod.load(spec["dataset"], "test", n=n, seed=seed)
        x, y, source = ds.x, ds.y, ds.describe()
    except (data_mod.DatasetNotFound, ValueError):
        g = device_mod.generator(device_mod.HOST, seed)  # the same noise on every device
        x = torch.rand(n, *spec["shape"], generator=g, device=device_mod.HOST)
        y = torch.randint(0, data_mod.DATASETS[spec["dataset"]][1], (n,), generator=g, device=device_mod.HOST)
        source = "synthetic uniform noise"
    return x.to(device), y.to(device), source


def _record(results: list, section: str, model: str, variant: str, timing: dict, images: int, **extra) -> dict:
    row = dict(section=section, model=model, variant=variant, images=images,
               seconds_median=timing["median"], images_per_s=images / timing["median"],
               seconds=timing["seconds"], load=timing["load"], cpu_util=timing["cpu_util"], **extra)
    results.append(row)
    return row


# --------------------------------------------------------------------------- FLOPs
def pgd_step_flops(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """FLOPs of one PGD step on the batch x: forward + gradient w.r.t. the input only
    (parameters frozen), counted by torch.utils.flop_counter on 2 images and scaled."""
    from torch.utils.flop_counter import FlopCounterMode

    m = copy.deepcopy(model).eval()
    for p in m.parameters():
        p.requires_grad_(False)
    xs = x[:2].clone().requires_grad_(True)
    with FlopCounterMode(display=False) as fc:
        F.cross_entropy(m(xs), y[:2]).backward()
    return fc.get_total_flops() * len(x) // 2


def train_step_flops(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """FLOPs of a training forward + backward (weight and input gradients) on the batch."""
    from torch.utils.flop_counter import FlopCounterMode

    m = copy.deepcopy(model).train()
    with FlopCounterMode(display=False) as fc:
        F.cross_entropy(m(x[:2]), y[:2]).backward()
    return fc.get_total_flops() * len(x) // 2


# --------------------------------------------------------------------------- sections
def _pgd_section(name, model, x, y, spec, steps, repeats, device, results, log, agree_batches, xa, ya):
    eps, alpha = spec["eps"], spec["alpha"]
    low = _low(device)
    fns: Dict[str, Callable] = {}

    def ours(precision: str, fast: bool):
        def f():
            with (_fast() if fast else contextlib.nullcontext()), _autocast(device, precision):
                return attacks.pgd(model, x, y, eps, alpha, steps, generator=_generator(device, 0))
        return f

    if speed is not None:
        fns["ours_exact_fp32"] = ours("fp32", False)
    fns["ours_fp32"] = ours("fp32", True)
    if low:
        fns[f"ours_{low}"] = ours(low, True)
    try:
        import torchattacks

        ta = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=True)

        def theirs(precision):
            def f():
                torch.manual_seed(0)
                with _autocast(device, precision):
                    return ta(x, y)
            return f

        fns["torchattacks_fp32"] = theirs("fp32")
        if low:
            fns[f"torchattacks_{low}"] = theirs(low)
    except ImportError:
        log("  torchattacks is not installed: skipping the peer comparison")
    timings = interleaved(fns, repeats, device, log=log)
    for k, t in timings.items():
        _record(results, "pgd", name, k, t, len(x), steps=steps, batch=len(x), eps=eps, alpha=alpha,
                image_steps_per_s=len(x) * steps / t["median"])

    # agreement of the final predictions: fp32 vs reduced precision, fast vs exact, ours vs torchattacks
    if low is None:
        log("  agreement skipped: no reduced precision to compare on this CPU")
        return
    n = 0
    agree = dict(adv_pred_differ=0, fwd_pred_differ=0, fast_vs_exact_pred_differ=0, exact_equals_torchattacks=True,
                 correct_fp32=0, correct_low=0, correct_exact=0, max_abs_diff_low=0.0, frac_pixels_differ_low=0.0)
    for b in range(agree_batches):
        xb, yb = xa[b * len(x):(b + 1) * len(x)], ya[b * len(x):(b + 1) * len(x)]
        if len(xb) == 0:
            break
        with _fast():
            x32 = attacks.pgd(model, xb, yb, eps, alpha, steps, generator=_generator(device, 100 + b))
            with _autocast(device, low):
                xlo = attacks.pgd(model, xb, yb, eps, alpha, steps, generator=_generator(device, 100 + b))
        xex = attacks.pgd(model, xb, yb, eps, alpha, steps, generator=_generator(device, 100 + b))
        with torch.inference_mode():
            p32 = model(x32).argmax(1)
            plo = model(xlo).argmax(1)
            pex = model(xex).argmax(1)
            with _autocast(device, low):
                pfwd = model(x32).argmax(1)
        if "torchattacks_fp32" in fns:
            torch.manual_seed(100 + b)
            xta = ta(xb, yb) if device.type == "cpu" else None
            if xta is not None:
                # torchattacks draws its start from the global generator: compare with the same draw
                torch.manual_seed(100 + b)
                start = (xb + torch.empty_like(xb).uniform_(-eps, eps)).clamp(0, 1)
                same = attacks.pgd(model, xb, yb, eps, alpha, steps, x_init=start)
                agree["exact_equals_torchattacks"] &= bool(torch.equal(same, xta))
        n += len(yb)
        agree["adv_pred_differ"] += int((p32 != plo).sum())
        agree["fwd_pred_differ"] += int((p32 != pfwd).sum())
        agree["fast_vs_exact_pred_differ"] += int((p32 != pex).sum())
        agree["correct_fp32"] += int((p32 == yb).sum())
        agree["correct_low"] += int((plo == yb).sum())
        agree["correct_exact"] += int((pex == yb).sum())
        d = (x32 - xlo).abs()
        agree["max_abs_diff_low"] = max(agree["max_abs_diff_low"], float(d.max()))
        agree["frac_pixels_differ_low"] += float((d > 0).float().sum())
    agree["frac_pixels_differ_low"] /= max(n * xa[0].numel(), 1)
    agree.update(n=n, precision=low, steps=steps,
                 note="predictions of the fp32 model after attacks from the same random start: fp32 vs "
                      f"{low} attack (adv_pred_differ); fp32 vs {low} forward on the fp32 adversarial "
                      "images (fwd_pred_differ); fast fp32 vs exact fp32 attack")
    results.append(dict(section="agreement", model=name, variant=f"fp32_vs_{low}", **agree))
    log(f"  agreement: {agree}")


def _naive_step(model, opt, x, y, eps, alpha, steps):
    """Textbook PGD adversarial training step (what a first implementation does)."""
    model.eval()
    x_adv = x.clone().detach() + torch.empty_like(x).uniform_(-eps, eps)
    x_adv = torch.clamp(x_adv, 0, 1).detach()
    for _ in range(steps):
        x_adv = x_adv.clone().detach().requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y)
        grad = torch.autograd.grad(loss, x_adv)[0]
        x_adv = x_adv.detach() + alpha * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1).detach()
    model.train()
    loss = F.cross_entropy(model(x_adv), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def _train_cfg(name: str, method: str, spec: dict, steps: int, batch: int) -> RunConfig:
    extra = {"trades": dict(beta=6.0), "rlfat_p": dict(eta=0.5)}.get(method, {})
    return RunConfig(dataset=spec["dataset"], model=spec["model"], model_kw=spec["kw"], method=method,
                     eps=spec["eps"], alpha=spec["alpha"], steps=steps, batch_size=batch, lr=0.01,
                     device="cpu", profile="custom", **extra)


def _ours_trainer(base: nn.Module, cfg: RunConfig, x, y, device, precision: str):
    """One step of the training loop's code path (runs.train), on a copy of the model."""
    method = methods_mod.get(cfg.method)
    model = copy.deepcopy(base).to(device)
    opt = runs_mod._make_optimizer(cfg, methods_mod.trainable_parameters(model, method))
    if hasattr(runs_mod, "_train_step") and speed is not None:
        model = speed.prepare_model(model)
        xb = speed.format_input(x)
        scaler = runs_mod._grad_scaler(cfg, device) if hasattr(runs_mod, "_grad_scaler") else None

        def step():
            model.train()
            with speed.fast():
                return runs_mod._train_step(model, method, opt, xb, y, cfg, _autocast(device, precision), scaler)
        return step

    def step():  # the loop body of runs.train before the speed work
        model.train()
        with _autocast(device, precision):
            loss, logs = method.loss(model, x, y, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss, logs
    return step


def _train_section(name, model, x, y, spec, steps, repeats, device, results, log, methods, all_low=False):
    low = _low(device)
    fns: Dict[str, Callable] = {}
    for method in methods:
        cfg = _train_cfg(name, method, spec, steps, len(x))
        if method == "pgd_at":
            naive_model = copy.deepcopy(model).to(device)
            naive_opt = torch.optim.SGD(naive_model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                        weight_decay=cfg.weight_decay)
            fns[f"{method}/naive_fp32"] = (lambda m=naive_model, o=naive_opt:
                                           _naive_step(m, o, x, y, spec["eps"], spec["alpha"], steps))
        fns[f"{method}/ours_fp32"] = _ours_trainer(model, cfg, x, y, device, "fp32")
        if low and (method == "pgd_at" or all_low):
            fns[f"{method}/ours_{low}"] = _ours_trainer(model, cfg, x, y, device, low)
    timings = interleaved(fns, repeats, device, log=log)
    for k, t in timings.items():
        method, variant = k.split("/")
        _record(results, "train", name, variant, t, len(x), method=method, attack_steps=steps, batch=len(x))


def campaign_configs(keys: Sequence[str] = CAMPAIGN_KEYS, profile: str = "cpu") -> Dict[str, RunConfig]:
    """'<experiment>/<row label>' -> the seed-0 RunConfig of every row of `keys` at `profile`,
    one per distinct training cost (rows differing only in seed, lambda or eta share one)."""
    from . import presets
    out: Dict[str, RunConfig] = {}
    seen = set()
    for key in keys:
        exp = presets.get(key)
        for label, cfg in exp.configs(profile, seeds=exp.seeds(profile)[:1]):
            d = {k: v for k, v in cfg.to_dict().items() if k not in ("seed", "lam", "eta", "beta")}
            cost = json.dumps(d, sort_keys=True, default=str)
            if cost not in seen:
                seen.add(cost)
                out[f"{key}/{label}"] = cfg
    return out


def _campaign_section(keys, repeats, device, results, log, profile: str = "cpu"):
    """One optimizer step of each config of `campaign_configs(keys)` on a real batch (its own
    batch size and test images), through the training loop's code path after the eps warm-up."""
    fns: Dict[str, Callable] = {}
    meta: Dict[str, dict] = {}
    for name, cfg in campaign_configs(keys, profile).items():
        try:
            train_ds, _ = runs_mod.prepare_data(cfg)
        except data_mod.DatasetNotFound as e:
            log(f"  {name}: skipped ({e})")
            continue
        method = methods_mod.get(cfg.method)
        torch.manual_seed(0)
        model = runs_mod.build_model(cfg, train_ds.num_classes).to(device)  # (AELF's ST start: speed only)
        opt = runs_mod._make_optimizer(cfg, methods_mod.trainable_parameters(model, method), model)
        x, y = train_ds.x[:cfg.batch_size].to(device), train_ds.y[:cfg.batch_size].to(device)
        if speed is not None:
            model = speed.prepare_model(model)
            x = speed.format_input(x)
        step_cfg = runs_mod.warmup_config(cfg, float(cfg.epochs))  # past the ramp: full eps

        def step(model=model, method=method, opt=opt, x=x, y=y, cfg=step_cfg):
            model.train()
            with (speed.fast() if speed is not None else contextlib.nullcontext()):
                return runs_mod._train_step(model, method, opt, x, y, cfg, runs_mod._autocast(cfg, device),
                                            runs_mod._grad_scaler(cfg, device))
        fns[name] = step
        meta[name] = dict(method=cfg.method, run_id=runs_mod.run_id(cfg), batch=cfg.batch_size,
                          train_images=len(train_ds.y), epochs=cfg.epochs, attack_steps=cfg.steps,
                          attack_bn_train=cfg.attack_bn_train, precision=cfg.precision)
    timings = interleaved(fns, repeats, device, log=log)
    for name, t in timings.items():
        m = meta[name]
        img_s = m["batch"] / t["median"]
        _record(results, "campaign", name.split("/")[0], name.split("/", 1)[1], t, m["batch"], **m,
                epoch_seconds=m["train_images"] / img_s, train_seconds=m["train_images"] / img_s * m["epochs"])


def _eval_section(name, model, x, y, spec, pgd_steps, cw_steps, repeats, device, results, log):
    """The FP&R Table 2 evaluation (PGD 5/20/100/200 + CW 30/100) on one batch, three ways:
    a PGD run per row, one run per loss with ``record_steps``, and the latter attacking only
    the clean-correct images (``evaluate.Suite.skip_misclassified``, the library default)."""
    eps, alpha = spec["eps"], spec["alpha"]

    def table(variant: str) -> dict:
        flags, secs = {}, {}
        with _fast():
            t0 = time.perf_counter()
            with torch.inference_mode():
                clean = model(x).argmax(1) == y
            flags["clean"] = clean
            _sync(device)
            secs["clean"] = time.perf_counter() - t0
            idx = clean.nonzero().flatten() if variant == "record_steps_skip" else None
            xs, ys = (x[idx], y[idx]) if idx is not None else (x, y)
            for loss, steps_list, seed in (("pgd", pgd_steps, 1), ("cw", cw_steps, 2)):
                if not steps_list:
                    continue
                t0 = time.perf_counter()
                kw = dict(loss="ce" if loss == "pgd" else "cw", kappa=50.0)
                if variant == "separate_runs":
                    advs = {k: attacks.pgd(model, xs, ys, eps, alpha, k, generator=_generator(device, seed), **kw)
                            for k in steps_list}
                else:
                    advs = attacks.pgd(model, xs, ys, eps, alpha, max(steps_list), record_steps=list(steps_list),
                                       generator=_generator(device, seed), **kw)
                for k in steps_list:
                    with torch.inference_mode():
                        ok = model(advs[k]).argmax(1) == ys
                    if idx is not None:
                        full = torch.zeros_like(clean)
                        full[idx] = ok
                        ok = full
                    flags[f"{loss}-{k}"] = ok
                _sync(device)
                secs[loss] = time.perf_counter() - t0
        table.last[variant] = (flags, secs)
        return flags

    table.last = {}
    variants = ("separate_runs", "record_steps", "record_steps_skip")
    timings = interleaved({v: (lambda v=v: table(v)) for v in variants}, repeats, device, warmup=0, log=log)
    acc = {v: {k: float(f.float().mean()) for k, f in table.last[v][0].items()} for v in variants}
    every = table.last["record_steps"][0]
    clean_wrong_adv_right = {k: int((f & ~every["clean"]).sum()) for k, f in every.items() if k != "clean"}
    for v, t in timings.items():
        _record(results, "eval", name, v, t, len(x), pgd_steps=list(pgd_steps), cw_steps=list(cw_steps),
                accuracy=acc[v], part_seconds={p: round(s_, 4) for p, s_ in table.last[v][1].items()},
                tables_equal=acc[v] == acc["separate_runs"], eps=eps, alpha=alpha,
                attacked=int(table.last[v][0]["clean"].sum()) if v == "record_steps_skip" else len(x),
                adv_correct_clean_wrong=clean_wrong_adv_right if v == "record_steps" else None)
    log(f"  eval table (record_steps): {acc['record_steps']}; equal to separate runs: "
        f"{acc['record_steps'] == acc['separate_runs']}; skipping misclassified: {acc['record_steps_skip']}; "
        f"adversarially correct but clean wrong (not skipped): {clean_wrong_adv_right}")


#: the attack the stop section times per dataset: (suite, PGD row)
STOP_ATTACK = {"mnist": ("aelf_mnist", 16), "cifar10": ("fpr_cifar", 20)}


def _default_stop_runs() -> List[str]:
    """A naturally trained MNIST run and an adversarially trained CIFAR-10 run with local weights."""
    root = runs_mod.runs_root()
    found: Dict[tuple, str] = {}
    for folder in sorted(root.iterdir()) if root.exists() else ():
        try:
            cfg = json.loads((folder / "config.json").read_text())
        except (OSError, ValueError):
            continue
        key = (cfg.get("dataset"), cfg.get("method"))
        if key in (("mnist", "st"), ("cifar10", "pgd_at")) and (folder / "model.pt").exists():
            found.setdefault(key, folder.name)
    return [found[k] for k in sorted(found)]


def _stop_section(run_ids: Sequence[str], n: int, repeats: int, device, results, log):
    from . import evaluate as evaluate_mod

    for run_id in run_ids:
        run = runs_mod.load_run(runs_mod.runs_root() / run_id, device=device)
        if run.cfg.dataset not in STOP_ATTACK:
            raise ValueError(f"stop section: no attack for dataset {run.cfg.dataset!r}; choose runs on {sorted(STOP_ATTACK)}")
        suite_name, k = STOP_ATTACK[run.cfg.dataset]
        s = evaluate_mod.get_suite(suite_name)
        alpha, rs = s.alpha_for(k), s.random_start[0]
        test = evaluate_mod.test_set(run.cfg)
        x, y = test.x[:n].to(device), test.y[:n].to(device)
        model = run.model.eval()
        flags: Dict[str, torch.Tensor] = {}
        rows = {"n": 0}
        hook = model.register_forward_hook(lambda m, inp, out: rows.__setitem__("n", rows["n"] + len(inp[0])))
        image_steps: Dict[str, int] = {}

        def attack(stop: bool):
            def go():
                rows["n"] = 0
                out = attacks.pgd(model, x, y, s.eps, alpha, k, random_start=rs, stop_when_fooled=stop,
                                  generator=_generator(device, 0))
                image_steps["stop" if stop else "last"] = rows["n"]
                with torch.no_grad():
                    flags["stop" if stop else "last"] = (model(out).argmax(1) == y).cpu()
            return go

        log(f"  {run_id}: PGD-{k} of {suite_name} (eps {s.eps:g}, step {alpha:g}, random start {rs}) on {len(y)} images")
        try:  # the plain model (not the fast path's folded copy), so the hook sees every forward pass
            timing = interleaved({"last_iterate": attack(False), "stop_when_fooled": attack(True)}, repeats,
                                 device, warmup=0, log=log)
        finally:
            hook.remove()
        with torch.no_grad():
            clean = float((model(x).argmax(1) == y).float().mean())
        last, stop = flags["last"], flags["stop"]
        for variant, key in (("last_iterate", "last"), ("stop_when_fooled", "stop")):
            _record(results, "stop", run_id, variant, timing[variant], len(y), steps=k, eps=s.eps, alpha=alpha,
                    random_start=rs, suite=suite_name, clean_accuracy=clean, accuracy=float(flags[key].float().mean()),
                    image_steps=image_steps[key], robust_only_to_last=int((~stop & last).sum()),
                    robust_only_to_stop=int((stop & ~last).sum()), method=run.cfg.method, model_name=run.cfg.model)
        log(f"    clean {clean:.4f}; last iterate {float(last.float().mean()):.4f}, stop_when_fooled "
            f"{float(stop.float().mean()):.4f}; forward passes {image_steps['last']} vs {image_steps['stop']}; "
            f"speed-up {timing['last_iterate']['median'] / timing['stop_when_fooled']['median']:.2f}x")


def _data_section(results, repeats, device, log, n=2048):
    """Tensor-resident crop+flip batches vs a DataLoader with per-image transforms."""
    from torch.utils.data import DataLoader, Dataset as TorchDataset

    spec = MODELS["narrow"]
    x, y, _ = _images(spec, n, device_mod.HOST)

    class PerImage(TorchDataset):
        def __len__(self):
            return len(y)

        def __getitem__(self, i):  # textbook: pad, random crop and flip one image at a time
            img = F.pad(x[i], (4, 4, 4, 4))
            oy, ox = torch.randint(0, 9, (2,)).tolist()
            img = img[:, oy:oy + 32, ox:ox + 32]
            if torch.rand(()) < 0.5:
                img = img.flip(-1)
            return img, y[i]

    xd, yd = x.to(device), y.to(device)

    def ours():
        for xb, yb in data_mod.batches(xd, yd, 128, True, "crop_flip", 4, device_mod.generator(device, 0)):
            pass
        _sync(device)

    def loader():
        for xb, yb in DataLoader(PerImage(), batch_size=128, shuffle=True, num_workers=0):
            xb.to(device)
        _sync(device)

    timings = interleaved({"tensor_batches": ours, "dataloader_per_image": loader}, repeats, device, log=log)
    for k, t in timings.items():
        _record(results, "data", "cifar10", k, t, n, augment="crop_flip", batch=128)


def _compile_section(name, model, x, y, spec, steps, device, results, log):
    """torch.compile of the attack's model: compile seconds and steady-state images/s."""
    eps, alpha = spec["eps"], spec["alpha"]
    row = dict(section="compile", model=name, variant="torch.compile(inductor)", steps=steps, images=len(x))
    try:
        compiled = torch.compile(copy.deepcopy(model))
        t0 = time.perf_counter()
        with _fast():
            attacks.pgd(compiled, x, y, eps, alpha, 1, generator=_generator(device, 0))
        _sync(device)
        row["compile_seconds"] = time.perf_counter() - t0

        def comp():
            with _fast():
                attacks.pgd(compiled, x, y, eps, alpha, steps, generator=_generator(device, 0))

        def eager():
            with _fast():
                attacks.pgd(model, x, y, eps, alpha, steps, generator=_generator(device, 0))

        t = interleaved({"compiled": comp, "eager": eager}, 2, device, log=log)
        row.update(images_per_s_compiled=len(x) / t["compiled"]["median"],
                   images_per_s_eager=len(x) / t["eager"]["median"],
                   load=t["compiled"]["load"] + t["eager"]["load"])
    except Exception as err:  # no compiler, unsupported op, ...
        row["error"] = f"{type(err).__name__}: {str(err)[:300]}"
    log(f"  compile: {row}")
    results.append(row)


# --------------------------------------------------------------------------- driver
def run(models: Sequence[str] = DEFAULT_MODELS, batch: int = 128, repeats: Union[int, Dict[str, int]] = 5,
        pgd_steps: Union[int, Dict[str, int]] = 5, train_steps: int = 5,
        eval_models: Sequence[str] = ("narrow",), eval_pgd: Sequence[int] = EVAL_PGD,
        eval_cw: Sequence[int] = EVAL_CW, eval_repeats: int = 2, sections: Iterable[str] = ("pgd", "train", "eval", "data"),
        train_methods: Sequence[str] = TRAIN_METHODS, campaign_keys: Sequence[str] = CAMPAIGN_KEYS,
        stop_runs: Optional[Sequence[str]] = None, stop_n: int = 1000,
        agree_batches: int = 2, device: str = "auto",
        threads: Optional[int] = None, compile_model: Optional[str] = None, use_stored_weights: bool = True,
        label: str = "", out: Optional[Union[str, Path]] = None, verbose: bool = True) -> dict:
    """Run the benchmark and return (and write to ``out``, if given) the result dict.

    ``repeats`` and ``pgd_steps`` may be dicts model -> value (models not named get 5)."""
    log = (lambda s: print(s, flush=True)) if verbose else (lambda s: None)
    if threads:
        torch.set_num_threads(int(threads))
    dev = runs_mod.resolve_device(device)
    sections = tuple(sections)
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ValueError(f"unknown benchmark model(s) {unknown}; choose from {sorted(MODELS)}")
    t_start = time.perf_counter()
    result = dict(schema=1, label=label, created=_dt.datetime.now().isoformat(timespec="seconds"),
                  machine=machine_info(dev), load_start=list(os.getloadavg()),
                  settings=dict(models=list(models), batch=batch, repeats=repeats, pgd_steps=pgd_steps,
                                train_steps=train_steps, eval_models=list(eval_models), eval_pgd=list(eval_pgd),
                                eval_cw=list(eval_cw), sections=list(sections), train_methods=list(train_methods),
                                campaign_keys=list(campaign_keys),
                                fast_path=speed is not None),
                  ceiling={}, models={}, results=[])
    log(f"robustbook bench on {result['machine']['cpu']} ({result['machine']['threads']} threads, "
        f"torch {torch.__version__}, {dev}); load {result['load_start']}")
    quick = max(repeats.values()) <= 1 if isinstance(repeats, dict) else repeats <= 1
    n_ceiling = 1024 if quick else 2048
    low = _low(dev)
    low_dtype = torch.bfloat16 if low == "bf16" else torch.float16
    if dev.type == "cpu":
        result["ceiling"]["bf16_speed"] = device_mod.bf16_speed(dev)
    if low is None:
        log(f"no fast bf16 on this CPU (bf16 matmuls at {device_mod.bf16_speed(dev):.3f}x fp32): "
            "reduced-precision variants skipped")

    def ceiling(when: str) -> None:
        """Best of 10 matmuls and of 10 large convolutions, at the start and at the end; the
        ceiling is the max over all of them (a dense conv runs faster than matmul here)."""
        c = result["ceiling"]
        for key, dt in (("fp32", torch.float32),) + (((low, low_dtype),) if low else ()):
            mm = matmul_gflops(dev, dt, n_ceiling, repeats=3 if quick else 10)
            cv = conv_gflops(dev, dt, repeats=3 if quick else 10, batch=16 if quick else 64)
            c[f"{key}_matmul_gflops_{when}"] = mm
            c[f"{key}_conv_gflops_{when}"] = cv
            c[f"{key}_gflops"] = max(c.get(f"{key}_gflops", 0.0), mm, cv)
        c["matmul_n"] = n_ceiling
        c["conv"] = "3x3, 256 -> 256 channels, 32x32, channels_last"
        c[f"load_{when}"] = _load()

    ceiling("start")
    log(f"ceiling (matmul {n_ceiling}): {result['ceiling']}")
    results = result["results"]
    for name in models:
        spec = MODELS[name]
        n_agree = batch * max(agree_batches, 1)
        x_all, y_all, source = _images(spec, batch + n_agree, dev, seed=0)
        x, y = x_all[:batch].contiguous(), y_all[:batch].contiguous()
        xa, ya = x_all[batch:], y_all[batch:]
        model, weights = _setup_model(name, dev, x_all, use_stored_weights)
        steps = pgd_steps.get(name, 5) if isinstance(pgd_steps, dict) else int(pgd_steps)
        reps = repeats.get(name, 5) if isinstance(repeats, dict) else int(repeats)
        info = dict(spec=dict(spec, shape=list(spec["shape"])), weights=weights, images=source,
                    parameters=sum(p.numel() for p in model.parameters()),
                    pgd_step_flops=pgd_step_flops(model, x, y), train_fwd_bwd_flops=train_step_flops(model, x, y))
        result["models"][name] = info
        log(f"\n== {name}: {spec['paper']}; weights: {weights}; pgd step {info['pgd_step_flops'] / 1e9:.2f} GFLOP")
        if "pgd" in sections:
            log(f"  PGD, {steps} steps, batch {batch}")
            _pgd_section(name, model, x, y, spec, steps, reps, dev, results, log, agree_batches, xa, ya)
        if "train" in sections:
            log(f"  training step, {train_steps}-step attack, batch {batch}")
            _train_section(name, model, x, y, spec, train_steps, reps, dev, results, log, train_methods,
                           all_low=quick)
        if "eval" in sections and name in eval_models:
            log(f"  evaluation table PGD {list(eval_pgd)} + CW {list(eval_cw)} on {batch} images")
            _eval_section(name, model, x, y, spec, eval_pgd, eval_cw, eval_repeats, dev, results, log)
        if compile_model == name:
            _compile_section(name, model, x, y, spec, steps, dev, results, log)
    if "campaign" in sections:
        log(f"\n== campaign training configs ({', '.join(campaign_keys)}, cpu profile, seed 0)")
        _campaign_section(campaign_keys, repeats if isinstance(repeats, int) else 3, dev, results, log)
    if "stop" in sections:
        stop_runs = list(stop_runs) if stop_runs else _default_stop_runs()
        log(f"\n== stop_when_fooled against the last iterate: {', '.join(stop_runs) or 'no local MNIST weights'}")
        result["settings"].update(stop_runs=stop_runs, stop_n=stop_n)
        _stop_section(stop_runs, stop_n, repeats if isinstance(repeats, int) else 3, dev, results, log)
    if "data" in sections:
        log("\n== data pipeline (2048 CIFAR images, crop+flip, batch 128)")
        _data_section(results, 1 if quick else 5, dev, log, n=512 if quick else 2048)
    ceiling("end")
    result["load_end"] = list(os.getloadavg())
    result["seconds"] = time.perf_counter() - t_start
    result["derived"] = derive(result)
    if out is not None:
        out = Path(out)
        files.atomic_write_text(json.dumps(result, indent=1, default=float) + "\n", out)
        log(f"\nwrote {out} ({result['seconds']:.0f} s)")
    return result


# --------------------------------------------------------------------------- derived numbers
def _find(rows, **kw):
    for r in rows:
        if all(r.get(k) == v for k, v in kw.items()):
            return r
    return None


def derive(result: dict) -> dict:
    """Ratios, targets and GFLOP/s per model from the raw rows."""
    rows = result["results"]
    ceil = result.get("ceiling", {})
    out = {}
    for name, info in result.get("models", {}).items():
        d = {}
        ours = _find(rows, section="pgd", model=name, variant="ours_fp32")
        exact = _find(rows, section="pgd", model=name, variant="ours_exact_fp32") or ours
        ta = _find(rows, section="pgd", model=name, variant="torchattacks_fp32")
        for low in ("bf16", "amp"):
            lo = _find(rows, section="pgd", model=name, variant=f"ours_{low}")
            ta_lo = _find(rows, section="pgd", model=name, variant=f"torchattacks_{low}")
            if lo:
                d["pgd_low_precision"] = low
                d["pgd_ours_low_img_s"] = lo["images_per_s"]
                if ta:
                    d["pgd_ours_low_vs_torchattacks_fp32"] = lo["images_per_s"] / ta["images_per_s"]
                if ta_lo:
                    d["pgd_torchattacks_low_img_s"] = ta_lo["images_per_s"]
                    d["pgd_ours_low_vs_torchattacks_low"] = lo["images_per_s"] / ta_lo["images_per_s"]
                flops = info["pgd_step_flops"] * lo["steps"] / lo["seconds_median"] / 1e9
                d["pgd_gflops_low"] = flops
                c = ceil.get(f"{low}_gflops")
                if c:
                    d["pgd_low_fraction_of_ceiling"] = flops / c
        if ours:
            d["pgd_steps"] = ours["steps"]
            d["pgd_ours_fp32_img_s"] = ours["images_per_s"]
            d["pgd_ours_exact_fp32_img_s"] = exact["images_per_s"]
            d["pgd_gflops_fp32"] = info["pgd_step_flops"] * ours["steps"] / ours["seconds_median"] / 1e9
            if ceil.get("fp32_gflops"):
                d["pgd_fp32_fraction_of_ceiling"] = d["pgd_gflops_fp32"] / ceil["fp32_gflops"]
        if ta:
            d["pgd_torchattacks_fp32_img_s"] = ta["images_per_s"]
            if ours:
                d["pgd_ours_fp32_vs_torchattacks"] = ours["images_per_s"] / ta["images_per_s"]
                d["pgd_ours_exact_fp32_vs_torchattacks"] = exact["images_per_s"] / ta["images_per_s"]
        ag = _find(rows, section="agreement", model=name)
        if ag:
            d["pred_differ_low_vs_fp32"] = f"{ag['adv_pred_differ']}/{ag['n']}"
            d["pred_differ_fast_vs_exact"] = f"{ag['fast_vs_exact_pred_differ']}/{ag['n']}"
        for method in TRAIN_METHODS:
            for variant in ("naive_fp32", "ours_fp32", "ours_bf16", "ours_amp"):
                r = _find(rows, section="train", model=name, method=method, variant=variant)
                if r:
                    d[f"train_{method}_{variant}_img_s"] = r["images_per_s"]
        naive = d.get("train_pgd_at_naive_fp32_img_s")
        if naive:
            for variant in ("ours_fp32", "ours_bf16", "ours_amp"):
                if f"train_pgd_at_{variant}_img_s" in d:
                    d[f"train_pgd_at_{variant}_vs_naive"] = d[f"train_pgd_at_{variant}_img_s"] / naive
        tr = _find(rows, section="train", model=name, method="pgd_at", variant="ours_fp32")
        if tr:
            flops = info["pgd_step_flops"] * tr["attack_steps"] + info["train_fwd_bwd_flops"]
            d["train_pgd_at_gflops_fp32"] = flops / tr["seconds_median"] / 1e9
        sep = _find(rows, section="eval", model=name, variant="separate_runs")
        rec = _find(rows, section="eval", model=name, variant="record_steps")
        if sep and rec:
            d["eval_record_steps_speedup"] = sep["seconds_median"] / rec["seconds_median"]
            ps, pr = sep["part_seconds"], rec["part_seconds"]
            if ps.get("pgd") and pr.get("pgd"):
                d["eval_pgd_rows_speedup"] = ps["pgd"] / pr["pgd"]
            d["eval_seconds_separate"] = sep["seconds_median"]
            d["eval_seconds_record"] = rec["seconds_median"]
            d["eval_tables_equal"] = rec["tables_equal"]
            steps_sep = sum(sep["pgd_steps"]) + sum(sep["cw_steps"])
            steps_rec = max(sep["pgd_steps"], default=0) + max(sep["cw_steps"], default=0)
            d["eval_step_ratio"] = steps_sep / steps_rec if steps_rec else None
        skip = _find(rows, section="eval", model=name, variant="record_steps_skip")
        if sep and skip:
            d["eval_record_skip_speedup"] = sep["seconds_median"] / skip["seconds_median"]
            d["eval_attacked_fraction"] = skip["attacked"] / skip["images"]
            d["eval_skip_max_abs_diff"] = max(abs(skip["accuracy"][k] - rec["accuracy"][k]) for k in skip["accuracy"])
        utils = [u for r in rows if r.get("model") == name for u in (r.get("cpu_util") or []) if u is not None]
        if utils:
            d["cpu_util_min"] = min(utils)
            d["cpu_util_median"] = statistics.median(utils)
        out[name] = d
    data_rows = [r for r in rows if r["section"] == "data"]
    if len(data_rows) == 2:
        t = _find(rows, section="data", variant="tensor_batches")
        dl = _find(rows, section="data", variant="dataloader_per_image")
        out["_data"] = dict(tensor_img_s=t["images_per_s"], dataloader_img_s=dl["images_per_s"],
                            speedup=t["images_per_s"] / dl["images_per_s"])
    return out


# --------------------------------------------------------------------------- summary
_COLUMNS = [
    ("pgd_ours_exact_fp32_img_s", "PGD ours exact fp32 (img/s)"),
    ("pgd_ours_fp32_img_s", "PGD ours fp32 (img/s)"),
    ("pgd_torchattacks_fp32_img_s", "PGD torchattacks fp32 (img/s)"),
    ("pgd_ours_fp32_vs_torchattacks", "ours/torchattacks fp32"),
    ("pgd_ours_low_img_s", "PGD ours bf16 (img/s)"),
    ("pgd_ours_low_vs_torchattacks_fp32", "ours bf16/torchattacks fp32"),
    ("pgd_ours_low_vs_torchattacks_low", "ours bf16/torchattacks bf16"),
    ("pred_differ_low_vs_fp32", "bf16 vs fp32 preds differ"),
    ("pred_differ_fast_vs_exact", "fast vs exact preds differ"),
    ("train_pgd_at_naive_fp32_img_s", "pgd_at naive fp32 (img/s)"),
    ("train_pgd_at_ours_fp32_img_s", "pgd_at ours fp32 (img/s)"),
    ("train_pgd_at_ours_fp32_vs_naive", "pgd_at ours/naive fp32"),
    ("train_pgd_at_ours_bf16_img_s", "pgd_at ours bf16 (img/s)"),
    ("train_pgd_at_ours_bf16_vs_naive", "pgd_at ours bf16/naive"),
    ("train_trades_ours_fp32_img_s", "trades ours fp32 (img/s)"),
    ("train_trades_ours_bf16_img_s", "trades ours bf16 (img/s)"),
    ("train_rlfat_p_ours_fp32_img_s", "rlfat_p ours fp32 (img/s)"),
    ("train_rlfat_p_ours_bf16_img_s", "rlfat_p ours bf16 (img/s)"),
    ("eval_record_steps_speedup", "eval table: record_steps speedup"),
    ("eval_pgd_rows_speedup", "eval PGD rows: record_steps speedup"),
    ("eval_step_ratio", "eval table: step-count ratio (bound)"),
    ("eval_record_skip_speedup", "eval table: record_steps + skip misclassified speedup"),
    ("pgd_gflops_fp32", "PGD GFLOP/s fp32"),
    ("pgd_fp32_fraction_of_ceiling", "fraction of fp32 ceiling"),
    ("pgd_gflops_low", "PGD GFLOP/s bf16"),
    ("pgd_low_fraction_of_ceiling", "fraction of bf16 ceiling"),
    ("cpu_util_min", "min CPU use (threads busy)"),
]


def summary(path: Union[str, Path, dict, Sequence[Union[str, Path, dict]]] = BENCH_DIR / "latest.json"):
    """The book's Performance table: one row per model (and per file, when several
    files are given, e.g. ``[before.json, latest.json]``), from the stored JSON."""
    import pandas as pd

    paths = [path] if isinstance(path, (str, Path, dict)) else list(path)
    frames = []
    for p in paths:
        res = p if isinstance(p, dict) else json.loads(Path(p).read_text())
        label = res.get("label") or (Path(p).stem if not isinstance(p, dict) else "")
        derived = res.get("derived") or derive(res)
        rows = []
        for name in res.get("models", {}):
            d = derived.get(name, {})
            row = {"run": label, "model": name}
            row.update({title: d.get(key) for key, title in _COLUMNS})
            rows.append(row)
        frame = pd.DataFrame(rows)
        if not frame.empty:
            frame = frame.dropna(axis=1, how="all")
        frames.append(frame)
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    index = ["run", "model"] if len(paths) > 1 else ["model"]
    if len(paths) == 1 and "run" in df:
        df = df.drop(columns="run")
    return df.set_index(index) if not df.empty else df


#: the headline numbers of the issue's targets, for before/after tables
HEADLINE = [
    "PGD ours fp32 (img/s)", "PGD torchattacks fp32 (img/s)", "ours/torchattacks fp32", "PGD ours bf16 (img/s)",
    "ours bf16/torchattacks fp32", "bf16 vs fp32 preds differ", "pgd_at ours fp32 (img/s)",
    "pgd_at ours/naive fp32", "pgd_at ours bf16/naive", "eval table: record_steps speedup",
    "eval PGD rows: record_steps speedup", "PGD GFLOP/s fp32", "fraction of fp32 ceiling",
]


def campaign_table(path: Union[str, Path, dict]):
    """The ``campaign`` section of a bench file as a table: one row per training config
    (experiment, row label, method, run id, attack steps, batch), its images/s, the seconds
    of one epoch and of the whole run it predicts, and its cost relative to the first row."""
    import pandas as pd

    res = path if isinstance(path, dict) else json.loads(Path(path).read_text())
    rows = [r for r in res.get("results", []) if r.get("section") == "campaign"]
    if not rows:
        return pd.DataFrame()
    base = rows[0]["images_per_s"]
    return pd.DataFrame([{
        "config": f"{r['model']}: {r['variant']}", "method": r["method"], "run id": r["run_id"],
        "attack steps": r["attack_steps"], "batch": r["batch"], "images/s": round(r["images_per_s"], 1),
        "epoch (s)": round(r["epoch_seconds"]), "run (min)": round(r["train_seconds"] / 60, 1),
        f"time per image vs {rows[0]['variant']}": round(base / r["images_per_s"], 2),
    } for r in rows]).set_index("config")


def stop_table(path: Union[str, Path, dict]):
    """The ``stop`` section of a bench file as a table: one row per run, the PGD row it ran, the
    accuracy under the last iterate and under `stop_when_fooled` (an image is broken if any
    iterate fooled it), their gap with the images behind it, and the forward passes each took."""
    import pandas as pd

    res = path if isinstance(path, dict) else json.loads(Path(path).read_text())
    by_run: Dict[str, Dict[str, dict]] = {}
    for r in res.get("results", []):
        if r.get("section") == "stop":
            by_run.setdefault(r["model"], {})[r["variant"]] = r
    rows = []
    for run_id, v in by_run.items():
        last, stop = v["last_iterate"], v["stop_when_fooled"]
        rows.append({
            "run id": run_id, "method": last["method"], "model": last["model_name"],
            "attack": f"PGD-{last['steps']} of {last['suite']} (eps {last['eps']:g}, step {last['alpha']:g})",
            "images": last["images"], "clean (%)": round(100 * last["clean_accuracy"], 2),
            "last iterate (%)": round(100 * last["accuracy"], 2),
            "stop_when_fooled (%)": round(100 * stop["accuracy"], 2),
            "gap (points)": round(100 * (last["accuracy"] - stop["accuracy"]), 2),
            "images robust only to the last iterate": last["robust_only_to_last"],
            "forward passes, last / stop": f"{last['image_steps']} / {stop['image_steps']}",
        })
    return pd.DataFrame(rows).set_index("run id") if rows else pd.DataFrame()


def compare(before: Union[str, Path, dict], after: Union[str, Path, dict], columns: Sequence[str] = HEADLINE):
    """Before/after table: one row per model, for each headline column the value of
    ``before`` and of ``after`` side by side (pandas MultiIndex columns)."""
    import pandas as pd

    def load(p):
        return dict(p) if isinstance(p, dict) else json.loads(Path(p).read_text())

    b_res, a_res = load(before), load(after)
    if b_res["machine"].get("cpu") == a_res["machine"].get("cpu"):
        # same machine: one ceiling (the best of both files' measurements) for both fractions
        ceil = {k: max(v, b_res.get("ceiling", {}).get(k, 0.0))
                for k, v in a_res.get("ceiling", {}).items() if k.endswith("_gflops")}
        for res in (b_res, a_res):
            res["ceiling"] = {**res.get("ceiling", {}), **ceil}
            res["derived"] = derive(res)
    b, a = summary(b_res), summary(a_res)
    cols = [c for c in columns if c in b.columns or c in a.columns]
    parts = {}
    for c in cols:
        parts[(c, "before")] = b[c] if c in b.columns else pd.Series(index=b.index, dtype=object)
        parts[(c, "after")] = a[c] if c in a.columns else pd.Series(index=a.index, dtype=object)
    return pd.DataFrame(parts)


def machine_line(path: Union[str, Path, dict]) -> str:
    """One line describing the machine and load of a stored benchmark."""
    res = path if isinstance(path, dict) else json.loads(Path(path).read_text())
    m = res["machine"]
    ceil = res.get("ceiling", {})
    return (f"{m['cpu']}, {m['cores']} cores, {m['threads']} threads, torch {m['torch']}, {m['device']}"
            f"{' (' + m['gpu'] + ')' if m.get('gpu') else ''}; ceiling (best matmul/conv) fp32 {ceil.get('fp32_gflops', 0):.0f} "
            f"GFLOP/s, bf16 {ceil.get('bf16_gflops', ceil.get('amp_gflops', 0)):.0f} GFLOP/s; "
            f"load {res.get('load_start', ['?'])[0]} -> {res.get('load_end', ['?'])[0]}; {res.get('created')}")


# --------------------------------------------------------------------------- CLI
def _ints(s: str) -> List[int]:
    return [int(v) for v in s.split(",") if v.strip()]


def main(argv: Optional[Sequence[str]] = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m robustbook.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="1 repeat, short attacks and a short eval table")
    p.add_argument("--models", default=",".join(DEFAULT_MODELS), help=f"comma list of {sorted(MODELS)}")
    p.add_argument("--out", default=str(BENCH_DIR / "latest.json"), help="JSON file to write")
    p.add_argument("--label", default=None, help="name of this run in tables (default: the file name)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per variant (default 5, wide3 3; quick 1)")
    p.add_argument("--pgd-steps", type=int, default=None, help="PGD steps of the throughput test (default 5; quick 2)")
    p.add_argument("--train-steps", type=int, default=5, help="attack steps of the training-step test")
    p.add_argument("--sections", default="pgd,train,eval,data",
                   help="comma list of pgd, train, eval, data, campaign, stop")
    p.add_argument("--stop-runs", default="", help="run ids of the stop section (default: local MNIST runs)")
    p.add_argument("--stop-n", type=int, default=1000, help="test images of the stop section")
    p.add_argument("--campaign-keys", default=",".join(CAMPAIGN_KEYS),
                   help="experiments whose cpu training configs the campaign section times")
    p.add_argument("--eval-models", default="narrow")
    p.add_argument("--eval-pgd", default=None, help="PGD rows of the eval table (default 5,20,100,200)")
    p.add_argument("--eval-cw", default=None, help="CW rows of the eval table (default 30,100)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--compile", default=None, metavar="MODEL", help="also time torch.compile on this model")
    p.add_argument("--no-stored-weights", action="store_true", help="never use weights of stored runs")
    a = p.parse_args(argv)
    quick = a.quick
    repeats: Union[int, Dict[str, int]] = a.repeats or (1 if quick else {m: 3 if m == "wide3" else 5 for m in MODELS})
    pgd_steps = a.pgd_steps if a.pgd_steps is not None else (2 if quick else 5)
    eval_pgd = _ints(a.eval_pgd) if a.eval_pgd else ([2, 5, 10, 20] if quick else list(EVAL_PGD))
    eval_cw = _ints(a.eval_cw) if a.eval_cw is not None else ([5, 10] if quick else list(EVAL_CW))
    out = Path(a.out)
    return run(models=[m for m in a.models.split(",") if m], batch=a.batch, repeats=repeats, pgd_steps=pgd_steps,
               train_steps=2 if quick and a.train_steps == 5 else a.train_steps,
               eval_models=[m for m in a.eval_models.split(",") if m], eval_pgd=eval_pgd, eval_cw=eval_cw,
               sections=[s for s in a.sections.split(",") if s],
               campaign_keys=[k for k in a.campaign_keys.split(",") if k], agree_batches=1 if quick else 2,
               stop_runs=[r for r in a.stop_runs.split(",") if r], stop_n=64 if quick else a.stop_n,
               eval_repeats=1 if quick else 2,
               device=a.device, threads=a.threads, compile_model=a.compile,
               use_stored_weights=not a.no_stored_weights, label=a.label or out.stem, out=out)


if __name__ == "__main__":  # pragma: no cover
    main()
    sys.exit(0)
