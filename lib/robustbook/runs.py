"""Training runs: one loop for every method, cached by config hash, resumable.

`train(cfg)` owns `data/runs/<run_id>/`:

- `config.json`   the RunConfig (plus run id and library version)
- `env.json`      torch / CUDA versions, device, threads, git commit
- `metrics.jsonl` one line per epoch: losses, train/test clean and PGD accuracy on
                  fixed probe sets, images/s, seconds
- `checkpoint.pt` model, optimizer, scheduler, RNG states, epoch (every epoch, atomic)
- `model.pt`      final weights; when it exists the run is loaded, never retrained.
- `superseded/<sha12>/` the records of weights a retrain replaced (hardware differs)

Only the small JSON files are committed to git (see .gitignore); weights stay local.

Speed: the loop keeps data on the device as tensors (no DataLoader), never syncs
with the host inside an epoch (losses are summed as tensors), and, unless
``ROBUSTBOOK_FAST=0``, trains the model in channels_last and crafts its attacks
in ``speed.fast()`` mode (BatchNorm folded into the convs of an attack copy):
the same computation up to float rounding, about 1.35x faster in fp32 on CPU
(``data/bench/``).  ``precision='bf16'`` autocasts (CPU or CUDA);
``precision='amp'`` is fp16 autocast with loss scaling (CUDA).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import torch
from tqdm.auto import tqdm

from . import __version__
from . import data as data_mod
from . import device as device_mod
from . import files
from . import methods as methods_mod
from . import models as models_mod
from . import speed
from .attacks import pgd
from .config import ConfigError, RunConfig, run_id
from .transforms import to_size

__all__ = ["RunConfig", "ConfigError", "Run", "train", "load_run", "runs_root", "run_dir", "prepare_data", "st_config"]


def runs_root() -> Path:
    """Folder of the run store: $ROBUSTBOOK_RUNS or <repo>/data/runs."""
    return Path(os.environ.get("ROBUSTBOOK_RUNS", data_mod.REPO_ROOT / "data" / "runs")).expanduser()


def run_dir(cfg: RunConfig, root: Optional[Path] = None) -> Path:
    return Path(root or runs_root()) / run_id(cfg)


@dataclass
class Run:
    """A finished (or loaded) run: its config, folder, trained model and per-epoch metrics."""

    cfg: RunConfig
    dir: Path
    model: torch.nn.Module
    metrics: List[dict] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.dir.name

    @property
    def final(self) -> dict:
        """The last epoch's metrics line."""
        return self.metrics[-1] if self.metrics else {}


# --------------------------------------------------------------------------- helpers
def resolve_device(name) -> torch.device:
    """'auto' -> CUDA when present, else CPU; 'cuda' without a GPU is a ConfigError (`device.resolve`)."""
    return device_mod.resolve(name)


_atomic_save = files.atomic_torch_save
_atomic_write_text = files.atomic_write_text


def weights_sha256(state_dict) -> str:
    """sha256 over the names, dtypes, shapes and bytes of a state dict's tensors: the identity
    of a set of weights (evaluation records are keyed by it, so a record never outlives the
    weights it measured)."""
    h = hashlib.sha256()
    for k in sorted(state_dict):
        t = state_dict[k].detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().tobytes())
    return h.hexdigest()


def weights_id(folder: Path) -> Optional[str]:
    """The committed weights hash of a finished run (`weights.json`), or None."""
    path = Path(folder) / "weights.json"
    return json.loads(path.read_text())["sha256"] if path.exists() else None


def records_complete(cfg: RunConfig, root: Optional[Path] = None) -> bool:
    """The run's committed records say it finished: config.json, `cfg.epochs` metrics lines and
    weights.json (the weights' hash). Such a run is not retrained on a machine without its
    weights (`reproduce`, the campaign and `make book` skip it; `--retrain` forces it)."""
    folder = run_dir(cfg, root)
    if not (folder / "config.json").exists() or weights_id(folder) is None:
        return False
    rows = files.read_jsonl(folder / "metrics.jsonl")
    return len(rows) >= cfg.epochs and rows[-1].get("epoch") == cfg.epochs


def _git_commit() -> Optional[str]:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=data_mod.REPO_ROOT, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None
    except Exception:
        return None


def _git_dirty() -> Optional[bool]:
    """Whether the library's working tree differs from its commit (None outside git)."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "lib"],
                             cwd=data_mod.REPO_ROOT, capture_output=True, text=True, timeout=10)
        return bool(out.stdout.strip()) if out.returncode == 0 else None
    except Exception:
        return None


def environment(device: torch.device, fast: Optional[bool] = None) -> dict:
    """What the run ran on (env.json): versions, device, threads, the library's commit, whether
    its working tree was dirty (the commit alone then does not say which code ran) and whether
    the fast path (`robustbook.speed`) was on."""
    return {
        "git_dirty": _git_dirty(),
        "fast_path": speed.enabled_by_default() if fast is None else fast,
        "robustbook": __version__,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "cpu": device_mod.cpu_model(),  # hosts differ run to run (2x in speed, weights not bitwise equal)
        "cpu_flags": device_mod.cpu_flags(),
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "git_commit": _git_commit(),
    }


def prepare_data(cfg: RunConfig):
    """(train, test) `Dataset`s for a config: class-balanced subsets (subset seed 0, so every
    seed sees the same images) resized to `input_size` when set."""
    train = data_mod.load(cfg.dataset, "train", n=cfg.train_size, seed=0)
    test = data_mod.load(cfg.dataset, "test", n=cfg.test_size, seed=0)
    if cfg.input_size:
        train.x = to_size(train.x, cfg.input_size)
        test.x = to_size(test.x, cfg.input_size)
    return train, test


def build_model(cfg: RunConfig, num_classes: int) -> torch.nn.Module:
    return models_mod.build(cfg.model, num_classes, **dict(cfg.model_kw))


def st_config(cfg: RunConfig) -> RunConfig:
    """The standard-training run that AELFs / JT* start from (AELF Algorithm 2, Table 3):
    same data, model, optimiser and seed, `pretrain_epochs` long; the method's own
    hyper-parameters are reset so every variant shares one ST run."""
    defaults = RunConfig()
    return cfg.replace(
        method="st",
        epochs=cfg.pretrain_epochs,
        milestones=cfg.pretrain_milestones,
        pretrain_epochs=0,
        pretrain_milestones=(),
        lam=defaults.lam,
        beta=defaults.beta,
        eta=defaults.eta,
        ratio=defaults.ratio,
        adv_fraction=defaults.adv_fraction,
        rbs_k=defaults.rbs_k,
        rbs_mode=defaults.rbs_mode,
    )


def decay_groups(model: torch.nn.Module, params, cfg: RunConfig) -> list:
    """Optimizer parameter groups: `cfg.weight_decay` on every parameter ('all') or only on
    conv and linear weights ('weights', Madry's cifar10_challenge: BatchNorm parameters and
    biases are not decayed)."""
    params = list(params)
    if cfg.weight_decay_params == "all" or cfg.weight_decay == 0:
        return [{"params": params, "weight_decay": cfg.weight_decay}]
    weights = {id(m.weight) for m in model.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and m.weight is not None}
    decayed = [p for p in params if id(p) in weights]
    rest = [p for p in params if id(p) not in weights]
    return [{"params": decayed, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}]


def _make_optimizer(cfg: RunConfig, params, model: Optional[torch.nn.Module] = None):
    groups = decay_groups(model, params, cfg) if model is not None else [{"params": list(params)}]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def _autocast(cfg: RunConfig, device: torch.device):
    if cfg.precision == "fp32":
        return nullcontext()
    if cfg.precision == "bf16" and device_mod.slow_bf16(device):
        warnings.warn(f"precision='bf16' on this CPU runs matmuls at {device_mod.bf16_speed(device):.3f}x the "
                      "fp32 speed (no bf16 instructions: lscpu lists neither avx512_bf16 nor amx_bf16): "
                      "training will be far slower than fp32; use precision='fp32' here", stacklevel=2)
    if cfg.precision == "amp":
        if device.type != "cuda":
            raise ConfigError("RunConfig.precision='amp' needs CUDA; use 'bf16' on CPU or 'fp32'")
        return torch.autocast("cuda", dtype=torch.float16)
    return torch.autocast(device.type, dtype=torch.bfloat16)


def warmup_config(cfg: RunConfig, progress: float) -> RunConfig:
    """`cfg` with the training attack's eps and alpha scaled by min(1, progress / eps_warmup_epochs),
    where `progress` counts epochs done (fractional within an epoch); `cfg` itself without a ramp."""
    if cfg.eps_warmup_epochs <= 0 or progress >= cfg.eps_warmup_epochs:
        return cfg
    scale = max(progress, 0.0) / cfg.eps_warmup_epochs
    return cfg.replace(eps=cfg.eps * scale, alpha=max(cfg.alpha * scale, 1e-12))


def onecycle_lr(cfg: RunConfig, progress: float) -> float:
    """The learning rate after `progress` epochs under lr_schedule='onecycle': piecewise linear
    through (0, 0), (0.4 * epochs, lr), (epochs, 0) (Wong et al. 2020)."""
    peak = 0.4 * cfg.epochs
    if progress <= peak:
        return cfg.lr * progress / peak
    return cfg.lr * max(cfg.epochs - progress, 0.0) / (cfg.epochs - peak)


def _epoch_seed(cfg: RunConfig, epoch: int) -> int:
    return cfg.seed * 100_003 + epoch


def _grad_scaler(cfg: RunConfig, device: torch.device):
    """Loss scaling for fp16 AMP on CUDA (bf16 and fp32 need none): None otherwise."""
    if cfg.precision == "amp" and device.type == "cuda":
        return torch.amp.GradScaler("cuda")
    return None


def _train_step(model, method, optimizer, xb, yb, cfg: RunConfig, autocast, scaler=None):
    """One optimizer step of `method` on the batch (the body of the training loop).
    Returns the loss and the logs, both as tensors (no host sync)."""
    with autocast:
        loss, logs = method.loss(model, xb, yb, cfg)
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        optimizer.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    return loss, logs


def _accuracy(model, x, y, batch_size=500) -> float:
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=y.device)
    with torch.inference_mode():
        for i in range(0, len(y), batch_size):
            correct += (model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum()
    return correct.item() / max(len(y), 1)


def probe(model, x, y, cfg: RunConfig, batch_size: int = 250) -> dict:
    """Clean and PGD accuracy (the training attack's eps/alpha/steps, random start) on a
    fixed probe set: a cheap per-epoch signal, not the paper's evaluation."""
    if len(y) == 0:
        return {}
    gen = device_mod.generator(x.device, 12345)  # on the probe set's device (pgd rejects a mismatch)
    clean = _accuracy(model, x, y)
    robust = clean
    if cfg.steps > 0 and cfg.eps > 0:
        correct = torch.zeros((), dtype=torch.long, device=y.device)
        for i in range(0, len(y), batch_size):
            xb, yb = x[i : i + batch_size], y[i : i + batch_size]
            x_adv = pgd(model, xb, yb, cfg.eps, cfg.alpha, max(cfg.steps, 10), random_start=True, generator=gen)
            with torch.inference_mode():
                correct += (model(x_adv).argmax(1) == yb).sum()
        robust = correct.item() / len(y)
    return {"clean": clean, "pgd": robust}


# --------------------------------------------------------------------------- public API
def load_run(cfg_or_dir, root: Optional[Path] = None, device=None, map_location=None) -> Run:
    """Load a finished run from its config or folder (weights with weights_only=True) onto
    `device`: default the run's own `cfg.device` ('auto': CUDA when present), so its
    evaluation runs where it trained; `map_location` is the old name of `device`."""
    folder = Path(cfg_or_dir) if isinstance(cfg_or_dir, (str, Path)) else run_dir(cfg_or_dir, root)
    if not (folder / "model.pt").exists():
        raise FileNotFoundError(f"run {folder.name} has no model.pt: it has not finished; call runs.train(cfg)")
    cfg = RunConfig.from_dict({k: v for k, v in json.loads((folder / "config.json").read_text()).items() if not k.startswith("_")})
    num_classes = data_mod.DATASETS[cfg.dataset][1]
    model = build_model(cfg, num_classes)
    state = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    if weights_id(folder) is None:  # runs finished before weights.json existed: record it now
        files.atomic_write_json({"sha256": weights_sha256(state), "epochs": cfg.epochs, "run_id": folder.name},
                                folder / "weights.json")
    model.to(resolve_device(device or map_location or cfg.device))
    model.eval()
    return Run(cfg=cfg, dir=folder, model=model, metrics=_read_metrics(folder))


def _read_metrics(folder: Path, upto_epoch: Optional[int] = None, name: str = "metrics.jsonl") -> List[dict]:
    """Per-epoch rows; a torn last line (a write cut short by a kill) is dropped, damage
    elsewhere is a `files.TornFile` error naming the file."""
    rows = files.read_jsonl(Path(folder) / name)
    if upto_epoch is not None:
        rows = [r for r in rows if r["epoch"] <= upto_epoch]
    return rows


def train(cfg: RunConfig, root: Optional[Path] = None, progress: Optional[bool] = None) -> Run:
    """Train `cfg` (or load it when `model.pt` exists, or resume from `checkpoint.pt`).

    One loop for every method: each step calls the method's pure loss
    `(model, x, y, cfg) -> (loss, logs)` with the model in train mode; the loop owns
    the optimiser, schedule, checkpoints and metrics. The run folder is locked
    (`files.RunLock`) while training, so two processes never train the same run.

    A run whose committed records are complete (`records_complete`) but whose weights are
    not here is retrained into `metrics.retrain.jsonl`; the committed `metrics.jsonl` is
    replaced only when the new run has finished, so an interrupted retrain loses nothing.
    """
    if not isinstance(cfg, RunConfig):
        raise TypeError(f"train() takes a RunConfig, got {type(cfg).__name__}")
    folder = run_dir(cfg, root)
    if (folder / "model.pt").exists():
        return load_run(folder, device=cfg.device)
    with files.RunLock(folder):
        if (folder / "model.pt").exists():  # another process finished it while we waited
            return load_run(folder, device=cfg.device)
        return _train(cfg, folder, root, progress)


SUPERSEDED = ("metrics.jsonl", "env.json", "weights.json")


def _supersede(folder: Path, sha: str) -> None:
    """Keep the records of weights `sha` that a retrain replaces, under superseded/<sha[:12]>/:
    an evaluation names the weights it measured (`weights_sha256`), so their training log must
    stay with the run."""
    dest = folder / "superseded" / sha[:12]
    dest.mkdir(parents=True, exist_ok=True)
    for name in SUPERSEDED:
        if (folder / name).exists():
            _atomic_write_text((folder / name).read_text(), dest / name)


CHECKPOINTS = ("checkpoint.pt", "checkpoint.prev.pt")  # the newest first


def resumable(cfg: RunConfig, root: Optional[Path] = None) -> bool:
    """Whether a checkpoint of `cfg` is on this machine (`train` resumes from it)."""
    folder = run_dir(cfg, root)
    return any((folder / name).exists() for name in CHECKPOINTS)


def _load_checkpoint(folder: Path):
    """The newest readable checkpoint (checkpoint.pt, else the previous one), or None. A
    truncated file is reported by name and skipped, never silently trusted."""
    for name in CHECKPOINTS:
        path = folder / name
        if not path.exists():
            continue
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # truncated or corrupt
            tqdm.write(f"warning: {path} is unreadable ({type(err).__name__}: {str(err)[:80]}); "
                       "trying the previous checkpoint")
    return None


def _train(cfg: RunConfig, folder: Path, root: Optional[Path], progress: Optional[bool]) -> Run:
    if progress is None:
        progress = os.environ.get("ROBUSTBOOK_QUIET", "") == ""
    method = methods_mod.get(cfg.method)
    device = resolve_device(cfg.device)
    autocast = _autocast(cfg, device)
    scaler = _grad_scaler(cfg, device)
    fast = speed.enabled_by_default()  # channels_last + folded attack copies (speed.py)

    train_ds, test_ds = prepare_data(cfg)
    x_train, y_train = train_ds.x.to(device), train_ds.y.to(device)
    n_probe = min(cfg.probe_size, len(test_ds))
    x_probe, y_probe = test_ds.x[:n_probe].to(device), test_ds.y[:n_probe].to(device)
    xt_probe, yt_probe = x_train[:n_probe], y_train[:n_probe]

    torch.manual_seed(cfg.seed)
    model = build_model(cfg, train_ds.num_classes).to(device)
    if method.init_from_st:
        st_run = train(st_config(cfg), root=root, progress=progress)
        model.load_state_dict(st_run.model.state_dict())
    if fast:
        speed.prepare_model(model)
    params = methods_mod.trainable_parameters(model, method)
    optimizer = _make_optimizer(cfg, params, model)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(cfg.milestones), gamma=cfg.lr_gamma)

    folder.mkdir(parents=True, exist_ok=True)
    start_epoch = 0
    ckpt_path = folder / "checkpoint.pt"
    # a retrain of a run with complete committed records writes beside them until it is done
    metrics_name = "metrics.retrain.jsonl" if (records_complete(cfg, root) or
                                               (folder / "metrics.retrain.jsonl").exists()) else "metrics.jsonl"
    metrics_path = folder / metrics_name
    env_name = "env.retrain.json" if metrics_name != "metrics.jsonl" else "env.json"
    # on the host: RNG states must stay CPU byte tensors (torch.set_rng_state and
    # torch.cuda.set_rng_state take nothing else); weights and optimizer state are
    # copied onto the model's device by load_state_dict
    ckpt = _load_checkpoint(folder)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(ckpt["rng_cpu"])
        if device.type == "cuda" and ckpt.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(ckpt["rng_cuda"])
        start_epoch = int(ckpt["epoch"])
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        rows = _read_metrics(folder, upto_epoch=start_epoch, name=metrics_name)  # drop lines of a lost epoch
        _atomic_write_text("".join(json.dumps(r) + "\n" for r in rows), metrics_path)
    else:
        record = {**cfg.to_dict(), "_run_id": run_id(cfg), "_version": __version__}
        record["_train_data"] = train_ds.describe()
        record["_test_data"] = test_ds.describe()
        _atomic_write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", folder / "config.json")
        _atomic_write_text(json.dumps(environment(device, fast), indent=1) + "\n", folder / env_name)
        _atomic_write_text("", metrics_path)

    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        torch.manual_seed(_epoch_seed(cfg, epoch))  # attack starts / RBS draws of this epoch
        gen = device_mod.generator(device, _epoch_seed(cfg, epoch))  # order and augmentation, on the data's device
        model.train()
        sums: dict = {}
        n_seen, n_batches = 0, 0
        bar = tqdm(
            data_mod.batches(x_train, y_train, cfg.batch_size, True, cfg.augment, cfg.crop_padding, gen),
            total=-(-len(y_train) // cfg.batch_size),
            desc=f"{cfg.method} epoch {epoch + 1}/{cfg.epochs}",
            disable=not progress or os.environ.get("ROBUSTBOOK_PROGRESS") == "lines",  # logs: epoch lines only
            leave=False,
        )
        steps_per_epoch = -(-len(y_train) // cfg.batch_size)
        for xb, yb in bar:
            if fast:
                xb = speed.format_input(xb)
            progress_epochs = epoch + (n_batches + 1) / steps_per_epoch
            step_cfg = warmup_config(cfg, progress_epochs)
            if cfg.lr_schedule == "onecycle":  # set per batch, so a resumed run gets the same rates
                for group in optimizer.param_groups:
                    group["lr"] = onecycle_lr(cfg, progress_epochs)
            with speed.fast(fast):
                loss, logs = _train_step(model, method, optimizer, xb, yb, step_cfg, autocast, scaler)
            for k, v in {"loss": loss.detach(), **logs}.items():
                sums[k] = sums.get(k, 0.0) + v.detach().float()
            n_seen += len(yb)
            n_batches += 1
            if progress and n_batches % 5 == 0:
                post = {"loss": f"{float(sums['loss']) / n_batches:.3f}"}  # running means of the epoch
                for k in ("acc", "acc_adv"):
                    if k in sums:
                        post[k] = f"{float(sums[k]) / n_batches:.3f}"
                post["img_s"] = f"{n_seen / (time.perf_counter() - t0):.0f}"
                bar.set_postfix(post)
        scheduler.step()
        train_seconds = time.perf_counter() - t0
        row = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"]}
        row.update({k: float(v) / max(n_batches, 1) for k, v in sums.items()})
        row["images_per_s"] = n_seen / train_seconds
        row["train_seconds"] = train_seconds
        with speed.fast(fast):
            row.update({f"test_{k}": v for k, v in probe(model, x_probe, y_probe, cfg).items()})
            row.update({f"train_{k}": v for k, v in probe(model, xt_probe, yt_probe, cfg).items()})
        row["seconds"] = time.perf_counter() - t0
        files.append_line(json.dumps(row), metrics_path)
        if ckpt_path.exists():  # keep the previous checkpoint until the new one is on disk
            os.replace(ckpt_path, folder / "checkpoint.prev.pt")
        _atomic_save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng_cpu": torch.get_rng_state(),
                "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                "scaler": scaler.state_dict() if scaler is not None else None,
                "epoch": epoch + 1,
            },
            ckpt_path,
        )
        if progress:
            tqdm.write(
                f"[{run_id(cfg)}] epoch {epoch + 1}/{cfg.epochs} loss {row['loss']:.4f} "
                f"test clean {row.get('test_clean', float('nan')):.3f} pgd {row.get('test_pgd', float('nan')):.3f} "
                f"({row['images_per_s']:.0f} img/s)"
            )

    model.eval()
    if fast:  # hand back (and store) the model in the default memory format
        model.to(memory_format=torch.contiguous_format)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    sha = weights_sha256(weights)
    if metrics_name != "metrics.jsonl":  # a finished retrain: compare with, then replace, the records
        old = weights_id(folder)
        if old is not None and old != sha:
            tqdm.write(f"[{run_id(cfg)}] retrained weights differ from the committed ones ({old[:12]} -> {sha[:12]}): "
                       "not a bitwise re-run (other hardware or library versions); the old records move to "
                       f"superseded/{old[:12]}/ (evaluations of the old weights name them by their hash)")
            _supersede(folder, old)
        if (folder / env_name).exists():
            os.replace(folder / env_name, folder / "env.json")
        os.replace(metrics_path, folder / "metrics.jsonl")
    _atomic_save(weights, folder / "model.pt")
    files.atomic_write_json({"sha256": sha, "epochs": cfg.epochs, "run_id": run_id(cfg)}, folder / "weights.json")
    ckpt_path.unlink(missing_ok=True)
    (folder / "checkpoint.prev.pt").unlink(missing_ok=True)
    return Run(cfg=cfg, dir=folder, model=model, metrics=_read_metrics(folder))
