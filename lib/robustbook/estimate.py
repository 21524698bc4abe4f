"""How long an experiment's runs will take here: time a few training steps of each
distinct run, extrapolate to its epochs and images.

    python -m robustbook.estimate --profile cpu [--experiments fpr_table2 aelf_table3]

The estimate covers training only (the per-epoch probe and the evaluation suites
come on top); it is a measurement of this machine, so it is printed with the
machine's load at the time.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Dict, Optional, Sequence

import torch

from . import data as data_mod
from . import methods as methods_mod
from . import presets
from .config import RunConfig
from .runs import build_model, resolve_device


def _timing_key(cfg: RunConfig):
    return (cfg.dataset, cfg.input_size, cfg.model, tuple(sorted(cfg.model_kw.items())), cfg.method,
            cfg.steps, cfg.batch_size, cfg.optimizer, cfg.adv_fraction)


def seconds_per_image(cfg: RunConfig, batches: int = 3, warmup: int = 1) -> float:
    """Measured training seconds per image of `cfg` (method loss + backward + step)."""
    device = resolve_device(cfg.device)
    num_classes = data_mod.DATASETS[cfg.dataset][1]
    c, h, w = data_mod.DATASETS[cfg.dataset][3]
    if cfg.input_size:
        h = w = cfg.input_size
    torch.manual_seed(0)
    model = build_model(cfg, num_classes).to(device).train()
    method = methods_mod.get(cfg.method)
    opt = torch.optim.SGD(methods_mod.trainable_parameters(model, method), lr=1e-3)
    x = torch.rand(cfg.batch_size, c, h, w, device=device)
    y = torch.randint(0, num_classes, (cfg.batch_size,), device=device)
    elapsed = 0.0
    for i in range(warmup + batches):
        t0 = time.perf_counter()
        loss, _ = method.loss(model, x, y, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            elapsed += time.perf_counter() - t0
    return elapsed / (batches * cfg.batch_size)


def train_images(cfg: RunConfig) -> int:
    """Images one epoch of `cfg` trains on (the subset, or the source's full split)."""
    return cfg.train_size or data_mod.DATASETS[cfg.dataset][2][0]


def estimate(keys: Optional[Sequence[str]] = None, profile: str = "cpu", seeds: int = 1,
             batches: int = 3) -> Dict[str, dict]:
    """Estimated training hours per experiment for `seeds` seeds of `profile`."""
    cache: Dict[tuple, float] = {}
    out = {}
    for key in keys or list(presets.EXPERIMENTS):
        exp = presets.get(key)
        total, rows = 0.0, []
        counted = set()
        for label, cfg in exp.configs(profile, seeds=range(seeds)):
            k = _timing_key(cfg)
            if k not in cache:
                cache[k] = seconds_per_image(cfg, batches=batches)
            secs = cache[k] * train_images(cfg) * cfg.epochs
            if cfg.run_id in counted:
                continue
            counted.add(cfg.run_id)
            total += secs
            rows.append(dict(label=label, seed=cfg.seed, run_id=cfg.run_id, img_per_s=1 / cache[k], seconds=secs))
        out[key] = dict(profile=profile, seeds=seeds, hours=total / 3600, runs=rows)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu", choices=presets.PROFILE_NAMES)
    ap.add_argument("--experiments", nargs="*", default=None)
    ap.add_argument("--batches", type=int, default=3)
    args = ap.parse_args(argv)
    print(f"load average {os.getloadavg()}, threads {torch.get_num_threads()}")
    for key, res in estimate(args.experiments, args.profile, batches=args.batches).items():
        print(f"{key:15s} {res['hours'] * 60:7.1f} min per seed ({len(res['runs'])} runs)")
        for r in res["runs"]:
            print(f"    {r['label']:32s} {r['img_per_s']:7.0f} img/s  {r['seconds'] / 60:6.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
