"""The analyses behind the papers' figures and remaining tables.

Two layers:

* pure functions on a model and a batch (``loss_sensitivity(model, x, y)``, ...), each
  citing the paper it reproduces; they return tensors / numbers and touch no files;
* ``analyse(run, name, **kw)``: runs analysis ``name`` on a trained run (its test set,
  and train set where the paper uses it), stores the small arrays a figure needs next to
  the run (``<run dir>/analysis/<name>-<hash>.json`` + ``.npz`` for bigger arrays) and
  returns them; a second call with the same arguments loads the file. ``load_stored``
  reads a stored analysis back, so the book draws figures without checkpoints.

Analyses (``ANALYSES``):

=========================  ===============================================================
shifted_accuracy           AELF Tables 2 / 6, Fig. 3: natural and adversarial accuracy on the
                           test set shifted 8 of 32 pixels left/right/up/down
shift_sweep                ours, beside AELF Fig. 3: natural accuracy against the shift size
                           (0-12 of 32 pixels), zero-filled and wrapped around
loss_sensitivity           RLFAT Table 2 (eqs. 11-12): mean ||grad_x CE||_2 under brightness
                           +-0.15 (HSV value) and gamma 0.8 / 1.2
gradient_maps              FP&R Fig. 4: grad_x CE clipped to +-3 std, rescaled to [0, 1]
gradient_map_accuracy      FP&R Table 4: those maps classified by a naturally trained model of
                           the same architecture, with / without clipping, train / test sets
normalized_gradient        AELF Fig. 2 (footnote 3): G / ||G||_2, then / max|.|
gradient_signs             AELF Figs. 4 / 6 (footnote 5): sign(G) where |G| > threshold
smoothgrad                 RLFAT Figs. 3 / 4: SmoothGrad salience of the true-class logit
attention_maps             FP&R Fig. 3: attention weights at residual block 4 (8x8)
attention_rank_curve       FP&R Fig. 2: mean attention weight against the robustness rank of
                           the 64 local features, train and test sets
attention_comparison       FP&R (IJCAI) sec. 4.3: non-linear vs linear attention, natural training
=========================  ===============================================================
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import __version__
from . import attacks as attacks_mod
from . import device as device_mod
from . import files
from . import runs as runs_mod
from .config import RunConfig
from .evaluate import _Frozen, _device, predict_correct, shifted_correct, test_set
from .transforms import SHIFT_FILLS, SHIFTS, brightness as _brightness, gamma as _gamma, shift as _shift

SWEEP_PIXELS = (0, 2, 4, 6, 8, 10, 12)  # shift sizes of `shift_sweep` (AELF's sets: 8 of 32)

__all__ = [
    "ANALYSES",
    "analyse",
    "store",
    "load_stored",
    "is_current",
    "StaleAnalysis",
    "stored_path",
    "input_gradient",
    "shifted_accuracy",
    "shift_sweep",
    "SWEEP_PIXELS",
    "loss_sensitivity",
    "gradient_maps",
    "gradient_map_accuracy",
    "normalized_gradient",
    "gradient_signs",
    "smoothgrad",
    "attention_maps",
    "attention_rank_curve",
    "attention_comparison",
    "natural_config",
    "INLINE_MAX",
]

#: arrays with at most this many elements are stored inline in the JSON, larger ones in the .npz
INLINE_MAX = 4096


# =========================================================================== pure analyses
def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: str = "ce",
                   batch_size: int = 250) -> torch.Tensor:
    """Per-example input gradient, shape of x: of the cross-entropy CE(model(x_i), y_i)
    (``target='ce'``) or of the true-class logit z_y(x_i) (``'logit'``). Eval mode, parameters
    frozen; examples are independent, so the gradient of the summed loss is per example."""
    if target not in ("ce", "logit"):
        raise ValueError(f"target must be 'ce' or 'logit', got {target!r}")
    device = _device(model)
    out = []
    with _Frozen(model), torch.inference_mode(False), torch.enable_grad():
        for i in range(0, len(y), batch_size):
            xb = x[i:i + batch_size].detach().clone().to(device).requires_grad_(True)
            yb = y[i:i + batch_size].to(device)
            logits = model(xb)
            if target == "ce":
                obj = F.cross_entropy(logits, yb, reduction="sum")
            else:
                obj = logits.gather(1, yb[:, None]).sum()
            (g,) = torch.autograd.grad(obj, xb)
            out.append(g.detach().cpu())
    return torch.cat(out) if out else torch.zeros_like(x)


def shifted_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, directions: Sequence[str] = SHIFTS,
                     pixels: int = 8, eps: Optional[float] = None, alpha: Optional[float] = None,
                     steps: Optional[int] = None, random_start: bool = False, batch_size: int = 250,
                     seed: int = 0) -> Dict[str, Dict[str, float]]:
    """AELF Tables 2 and 6 (Fig. 3): accuracy on the test set ('none') and on copies shifted by
    `pixels` (8 of 32) towards each direction, natural ('clean') and under PGD(eps, steps, alpha)
    crafted on the shifted images ('adv', when eps is given; AELF: PGD(0.3, 16, 0.02), no noise)."""
    attack = None
    if eps is not None:
        if alpha is None or steps is None:
            raise ValueError("give eps, alpha and steps together (AELF: 0.3, 0.02, 16)")
        attack = dict(eps=eps, alpha=alpha, steps=steps, random_start=random_start)
    out = {}
    flags = shifted_correct(model, x, y, ["left"], 0, attack, batch_size, seed)["left"]  # a 0-pixel shift = x
    out["none"] = {k: float(v.float().mean()) for k, v in flags.items()}
    for d, row in shifted_correct(model, x, y, list(directions), pixels, attack, batch_size, seed).items():
        out[d] = {k: float(v.float().mean()) for k, v in row.items()}
    return out


def shift_sweep(model: nn.Module, x: torch.Tensor, y: torch.Tensor, pixels: Sequence[int] = SWEEP_PIXELS,
                fills: Sequence[str] = SHIFT_FILLS, directions: Sequence[str] = SHIFTS,
                batch_size: int = 250) -> Dict[str, np.ndarray]:
    """Natural accuracy against the shift size (ours, beside AELF Fig. 3, which shows 8 of 32
    pixels only): {fill: array (directions x pixels)}, shifted with `transforms.shift` zero-filled
    (content leaving the frame is lost) or wrapped around. Tells how much of a shifted set's
    error is the lost strip of the digit and how much the position."""
    out = {}
    for fill in fills:
        acc = np.zeros((len(directions), len(pixels)))
        for i, d in enumerate(directions):
            for j, p in enumerate(pixels):
                acc[i, j] = float(predict_correct(model, _shift(x, d, int(p), fill), y, batch_size).float().mean())
        out[fill] = acc
    return out


def loss_sensitivity(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                     brightness: Sequence[float] = (-0.15, 0.15), gammas: Sequence[float] = (0.8, 1.2),
                     batch_size: int = 250) -> Dict[str, Dict[float, float]]:
    """RLFAT Table 2, eqs. 11-12: l_F = (1/m) sum_i ||grad_x L(F; T(x_i), y_i)||_2 with T the
    HSV-value brightness shift V(x, alpha) (`transforms.brightness`) or the gamma map x^gamma;
    the gradient is taken at the transformed image, per example, in [0, 1] pixel units."""

    def mean_norm(xt):
        g = input_gradient(model, xt, y, "ce", batch_size)
        return float(g.flatten(1).norm(dim=1).mean())

    return {
        "brightness": {float(a): mean_norm(_brightness(x, a)) for a in brightness},
        "gamma": {float(g): mean_norm(_gamma(x, g)) for g in gammas},
    }


def _clip_rescale(g: torch.Tensor, clip_std: Optional[float]) -> torch.Tensor:
    """Per image: clip to mean +- clip_std * std and rescale that range to [0, 1]; clip_std=None:
    min-max rescale. Constant maps become 0.5."""
    flat = g.flatten(1).float()
    if clip_std is None:
        lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    else:
        mean, std = flat.mean(1, keepdim=True), flat.std(1, unbiased=False, keepdim=True)
        lo, hi = mean - clip_std * std, mean + clip_std * std
    span = hi - lo
    out = torch.where(span > 0, (flat.clamp(min=lo, max=hi) - lo) / span.clamp_min(1e-30), torch.full_like(flat, 0.5))
    return out.view_as(g)


def gradient_maps(model: nn.Module, x: torch.Tensor, y: torch.Tensor, clip_std: Optional[float] = 3.0,
                  batch_size: int = 250) -> Dict[str, torch.Tensor]:
    """FP&R Fig. 4: the gradient of the CE loss w.r.t. the input pixels; 'clipped' = clipped to
    within +-3 standard deviations (around the image's mean gradient) and rescaled to [0, 1];
    'unclipped' = min-max rescaled to [0, 1]; 'gradient' = the raw gradient."""
    g = input_gradient(model, x, y, "ce", batch_size)
    return {"gradient": g, "clipped": _clip_rescale(g, clip_std), "unclipped": _clip_rescale(g, None)}


def gradient_map_accuracy(classifier: nn.Module, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                          clip_std: float = 3.0, batch_size: int = 250) -> Dict[str, float]:
    """FP&R Table 4: accuracy of `classifier` (a naturally trained model of the same architecture)
    on the gradient maps of `model`, with clipping (+-3 std, rescaled) and without (min-max
    rescaled to [0, 1]). The labels are the images' true classes."""
    modes = (("with_clipping", clip_std), ("without_clipping", None))
    flags: Dict[str, list] = {name: [] for name, _ in modes}
    for i in range(0, len(y), batch_size):
        g = input_gradient(model, x[i:i + batch_size], y[i:i + batch_size], "ce", batch_size)
        for name, c in modes:
            flags[name].append(predict_correct(classifier, _clip_rescale(g, c), y[i:i + batch_size], batch_size))
    return {name: float(torch.cat(f).float().mean()) if f else float("nan") for name, f in flags.items()}


def normalized_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 250) -> torch.Tensor:
    """AELF Fig. 2, footnote 3: G~ = G / ||G||_2, shown as G~ / max|G~| (per image, in [-1, 1])."""
    g = input_gradient(model, x, y, "ce", batch_size)
    flat = g.flatten(1)
    flat = flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-30)
    flat = flat / flat.abs().max(dim=1, keepdim=True).values.clamp_min(1e-30)
    return flat.view_as(g)


def gradient_signs(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                   thresholds: Sequence[float] = (1e-4, 1e-3, 1e-2), batch_size: int = 250) -> Dict[str, Any]:
    """AELF Figs. 4 and 6, footnote 5: the sign of the raw CE input gradient G, shown only where
    |G| > threshold ('* <' under each panel; the paper does not print its thresholds, so they
    are arguments). Returns {'gradient': G, 'signs': int8 (T, *x.shape) in {-1, 0, 1}}."""
    g = input_gradient(model, x, y, "ce", batch_size)
    signs = torch.stack([(torch.sign(g) * (g.abs() > t)).to(torch.int8) for t in thresholds]) if len(thresholds) \
        else torch.zeros((0, *g.shape), dtype=torch.int8)
    return {"gradient": g, "signs": signs, "thresholds": torch.tensor([float(t) for t in thresholds])}


def smoothgrad(model: nn.Module, x: torch.Tensor, y: torch.Tensor, n_samples: int = 50, noise: float = 0.15,
               generator: Optional[torch.Generator] = None, batch_size: int = 250) -> Dict[str, torch.Tensor]:
    """RLFAT Figs. 3-4 (following Zhang & Zhu 2019): SmoothGrad (Smilkov et al. 2017), the mean
    over `n_samples` noisy copies x + N(0, sigma^2), sigma = noise * (max(x) - min(x)) per image,
    of the gradient of the true-class logit. 'salience' is the usual display: |.| summed over
    channels, clipped at the 99th percentile and scaled to [0, 1] per image (our choice)."""
    if n_samples < 1:
        raise ValueError("n_samples must be >= 1")
    span = (x.flatten(1).max(1).values - x.flatten(1).min(1).values).view(-1, *([1] * (x.dim() - 1)))
    total = torch.zeros_like(x)
    for _ in range(n_samples):
        eps = torch.randn(x.shape, generator=generator, dtype=x.dtype,
                          device=device_mod.rng_device(generator, x.device)).to(x.device)
        total += input_gradient(model, x + noise * span * eps, y, "logit", batch_size)
    mean = total / n_samples
    sal = mean.abs().sum(1)  # (B, H, W)
    flat = sal.flatten(1)
    q = torch.quantile(flat, 0.99, dim=1, keepdim=True).clamp_min(1e-30)
    salience = (flat.clamp(max=q) / q).view_as(sal)
    return {"gradient": mean, "salience": salience}


def _require_attention(model: nn.Module) -> None:
    if not getattr(model, "has_attention", False):
        raise ValueError("this analysis needs an attention model (madry_resnet with attention='nonlinear' "
                         "or 'linear'; FP&R sec. 3.2)")


def attention_maps(model: nn.Module, x: torch.Tensor, batch_size: int = 250) -> torch.Tensor:
    """FP&R Fig. 3: attention weights (B, H, W) over the output of residual block 4 (8x8 for
    32x32 inputs), each map summing to 1 (eq. 4)."""
    _require_attention(model)
    device = _device(model)
    out = []
    with _Frozen(model), torch.inference_mode():
        for i in range(0, len(x), batch_size):
            out.append(model.attention(x[i:i + batch_size].to(device)).cpu())
    return torch.cat(out)


def attention_rank_curve(model: nn.Module, x: torch.Tensor, y: torch.Tensor, x_adv: Optional[torch.Tensor] = None,
                         eps: float = 8 / 255, alpha: float = 2 / 255, steps: int = 5, random_start: bool = True,
                         seed: int = 0, batch_size: int = 250) -> Dict[str, torch.Tensor]:
    """FP&R Fig. 2 / IJCAI sec. 4.3: rank the N local features l_n (N = 64 positions of the 8x8
    block-4 map) of each image by robustness ||l_n(x) - l_n(x')||_2 (rank 0 = smallest distance =
    most robust), and average the attention weight w_n(x) of the clean image per rank over all
    images. x' = PGD(eps, alpha, steps) on the model (default FP&R's CIFAR attack) unless given.

    Returns 'curve' (N,), 'sorted_weights' (B, N) (each row sums to 1), 'distance_by_rank' (N,)
    (mean distance per rank) and 'order' (B, N) (position index of each rank)."""
    _require_attention(model)
    device = _device(model)
    gen = device_mod.generator(device, seed)
    rows_w, rows_d, rows_o = [], [], []
    for i in range(0, len(y), batch_size):
        xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
        if x_adv is None:
            xa = attacks_mod.pgd(model, xb, yb, eps, alpha, steps, random_start=random_start, generator=gen)
        else:
            xa = x_adv[i:i + batch_size].to(device)
        with _Frozen(model), torch.inference_mode():
            l, la = model.local_features(xb), model.local_features(xa)
            d = (l - la).flatten(2).norm(dim=1)  # (B, N)
            w = model.attention(xb).flatten(1)  # (B, N)
            order = torch.argsort(d, dim=1, stable=True)
            rows_w.append(w.gather(1, order).cpu())
            rows_d.append(d.gather(1, order).cpu())
            rows_o.append(order.cpu())
    sw, sd = torch.cat(rows_w), torch.cat(rows_d)
    return {"curve": sw.mean(0), "sorted_weights": sw, "distance_by_rank": sd.mean(0), "order": torch.cat(rows_o)}


def attention_comparison(models: Mapping[str, nn.Module], x: torch.Tensor, y: torch.Tensor,
                         batch_size: int = 250) -> Dict[str, float]:
    """FP&R (IJCAI) sec. 4.3: natural test accuracy of naturally trained models with the
    non-linear and the linear (Jetley et al. 2018) attention (paper: 92.87% vs 91.34%)."""
    return {name: float(predict_correct(m, x, y, batch_size).float().mean()) for name, m in models.items()}


# =========================================================================== storage
def _analysis_dir(run) -> Path:
    return Path(run.dir if hasattr(run, "dir") else run) / "analysis"


def stored_path(run, name: str) -> Path:
    """`<run dir>/analysis/<name>.json`."""
    return _analysis_dir(run) / f"{name}.json"


def _to_numpy(v) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu()
        if v.dtype == torch.bfloat16 or v.dtype == torch.float16:
            v = v.float()
        return v.numpy()
    return np.asarray(v)


def _round_list(a: np.ndarray):
    if a.dtype.kind == "f":
        return [_round_list(r) for r in a] if a.ndim > 1 else [float(f"{v:.6g}") if math.isfinite(v) else None
                                                               for v in a.tolist()]
    return a.tolist()


def store(run, name: str, arrays: Mapping[str, Any], meta: Optional[Mapping[str, Any]] = None) -> Path:
    """Save small arrays for a figure next to the run: `<run dir>/analysis/<name>.json` holds `meta`
    and every array of at most `INLINE_MAX` elements (floats to 6 significant digits); larger
    arrays go to `<name>.npz` (float32 / ints, compressed). Returns the JSON path."""
    if not name or "/" in name:
        raise ValueError(f"bad analysis name {name!r}")
    folder = _analysis_dir(run)
    folder.mkdir(parents=True, exist_ok=True)
    inline, big = {}, {}
    for k, v in arrays.items():
        a = _to_numpy(v)
        if a.dtype.kind == "f":
            a = a.astype(np.float32)
        if a.size <= INLINE_MAX:
            inline[k] = {"dtype": str(a.dtype), "shape": list(a.shape), "data": _round_list(a.reshape(-1)) if a.ndim == 0
                         else _round_list(a)}
        else:
            big[k] = a
            inline[k] = {"dtype": str(a.dtype), "shape": list(a.shape), "npz": f"{name}.npz"}
    if big:
        buf = io.BytesIO()
        np.savez_compressed(buf, **big)
        files.atomic_write_bytes(buf.getvalue(), folder / f"{name}.npz")
    doc = {"name": name, "meta": dict(meta or {}), "arrays": inline}
    path = stored_path(run, name)
    files.atomic_write_text(json.dumps(doc, indent=1, default=_json_default) + "\n", path)
    return path


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, torch.Tensor) and o.numel() == 1:
        return o.item()
    if isinstance(o, (Path,)):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


class StaleAnalysis(FileNotFoundError):
    """A stored analysis measured other weights than the run folder's `weights.json` names."""


def _folder(r) -> Path:
    return Path(r.dir if hasattr(r, "dir") else (runs_mod.run_dir(r) if isinstance(r, RunConfig) else r))


def weights_of(run, kw: Mapping[str, Any]) -> Dict[str, Optional[str]]:
    """{run id: committed weights hash} of `run` and of the runs among the arguments `kw`
    (classifier=, other=): the weights an analysis measured (stored in its meta)."""
    folders = [_folder(run)] + [_folder(v) for v in kw.values() if isinstance(v, (runs_mod.Run, RunConfig, Path))]
    return {f.name: runs_mod.weights_id(f) for f in folders}


def stale_reason(run, doc: Mapping[str, Any]) -> Optional[str]:
    """Why the stored analysis `doc` no longer describes the weights of `run` (and of the runs it
    used, looked up beside it), or None. Records without weights hashes (or runs without a
    `weights.json`) cannot be checked and count as current."""
    root = _folder(run).parent
    for run_id, sha in (doc.get("meta", {}).get("weights") or {}).items():
        now = runs_mod.weights_id(root / run_id)
        if sha is not None and now is not None and now != sha:
            return f"{run_id} was retrained (weights {now[:12]}, analysis measured {sha[:12]})"
    return None


def is_current(run, name: str) -> bool:
    """A stored analysis `name` exists for `run` and measured its present weights."""
    path = stored_path(run, name)
    return path.exists() and stale_reason(run, json.loads(path.read_text())) is None


def load_stored(run, name: str) -> Dict[str, Any]:
    """{'arrays': {key: np.ndarray}, 'meta': {...}} of a stored analysis (no model needed).
    Raises `StaleAnalysis` when it measured weights other than the run's present ones."""
    path = stored_path(run, name)
    if not path.exists():
        raise FileNotFoundError(f"no stored analysis {name!r} in {path.parent}")
    doc = json.loads(path.read_text())
    stale = stale_reason(run, doc)
    if stale:
        raise StaleAnalysis(f"stored analysis {path} is stale: {stale}; recompute it with analysis.analyse")
    arrays = {}
    npz = None
    for k, spec in doc["arrays"].items():
        if "npz" in spec:
            if npz is None:
                npz = np.load(path.parent / spec["npz"])
            arrays[k] = npz[k]
        else:
            # floats: None (a non-finite value in the JSON) becomes NaN
            a = np.array(spec["data"], dtype=np.float64 if spec["dtype"].startswith("float") else spec["dtype"])
            arrays[k] = a.astype(spec["dtype"]).reshape(spec["shape"])
    if npz is not None:
        npz.close()
    return {"arrays": arrays, "meta": doc["meta"], "name": doc["name"]}


# =========================================================================== run-level runners
def _u8(x: torch.Tensor) -> np.ndarray:
    return (x.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def _test(run, n: Optional[int] = None):
    test = test_set(run.cfg)
    m = len(test) if n is None else min(n, len(test))
    return test, test.x[:m], test.y[:m]


def _pick(test, n_images: int, digits: Optional[Sequence[int]] = None, indices: Optional[Sequence[int]] = None):
    """Indices of the figure's images: given ones, the first test image of each class in `digits`,
    or the first n_images."""
    if indices is not None:
        idx = [int(i) for i in indices]
    elif digits is not None:
        idx = []
        for d in digits:
            hits = torch.nonzero(test.y == int(d)).flatten()
            if len(hits) == 0:
                raise ValueError(f"no test image of class {d}")
            idx.append(int(hits[0]))
    else:
        idx = list(range(min(n_images, len(test))))
    return idx


def natural_config(cfg: RunConfig) -> RunConfig:
    """The naturally trained model of the same architecture and data (FP&R Table 4's
    classifier of gradient maps): method 'st', no attention, the method's weights reset."""
    kw = {k: v for k, v in dict(cfg.model_kw).items() if k != "attention"}
    defaults = RunConfig()
    return cfg.replace(method="st", model_kw=kw, lam=0.0, beta=0.0, eta=0.0, pretrain_epochs=0,
                       pretrain_milestones=(), ratio=defaults.ratio, adv_fraction=defaults.adv_fraction)


def _other_attention_config(cfg: RunConfig) -> RunConfig:
    kind = dict(cfg.model_kw).get("attention")
    if kind not in ("nonlinear", "linear"):
        raise ValueError("attention_comparison needs a run of an attention model")
    return cfg.replace(model_kw={**dict(cfg.model_kw), "attention": "linear" if kind == "nonlinear" else "nonlinear"})


def _as_run(other, like) -> runs_mod.Run:
    if isinstance(other, runs_mod.Run):
        return other
    if isinstance(other, RunConfig):
        return runs_mod.train(other, root=like.dir.parent)
    if isinstance(other, (str, Path)):
        return runs_mod.load_run(other)
    raise TypeError(f"expected a Run, RunConfig or run folder, got {type(other).__name__}")


def _run_shifted(run, directions=SHIFTS, pixels=8, eps=None, alpha=None, steps=None, random_start=None,
                 n=None, n_images=5):
    cfg = run.cfg
    eps = cfg.eps if eps is None else eps
    alpha = cfg.alpha if alpha is None else alpha
    steps = cfg.steps if steps is None else steps
    random_start = cfg.random_start if random_start is None else random_start
    test, x, y = _test(run, n)
    attack = dict(eps=eps, alpha=alpha, steps=steps, random_start=random_start) if eps > 0 and steps > 0 else {}
    res = shifted_accuracy(run.model, x, y, directions, pixels, **attack)
    sets = ["none", *directions]
    xs = x[:n_images]
    examples = torch.stack([xs] + [_shift(xs, d, pixels) for d in directions], 1)
    arrays = {"accuracy_clean": [res[s]["clean"] for s in sets],
              "accuracy_adv": [res[s].get("adv", float("nan")) for s in sets],
              "examples": _u8(examples)}
    meta = {"sets": sets, "pixels": pixels, "attack": attack, "images": f"first {len(y)} of {test.describe()}",
            "ref": "AELF Tables 2 and 6, Fig. 3"}
    return arrays, meta


def _run_shift_sweep(run, pixels=SWEEP_PIXELS, fills=SHIFT_FILLS, n=None):
    test, x, y = _test(run, n)
    res = shift_sweep(run.model, x, y, tuple(pixels), tuple(fills))
    arrays = {f"accuracy_{fill}": acc for fill, acc in res.items()}
    meta = {"directions": list(SHIFTS), "pixels": [int(p) for p in pixels], "fills": list(fills),
            "images": f"first {len(y)} of {test.describe()}",
            "ref": "ours, beside AELF Fig. 3 (the paper shows 8 of 32 pixels, fill not stated)"}
    return arrays, meta


def _run_loss_sensitivity(run, brightness=(-0.15, 0.15), gammas=(0.8, 1.2), n=None):
    test, x, y = _test(run, n)
    res = loss_sensitivity(run.model, x, y, brightness, gammas)
    arrays = {"brightness": [res["brightness"][float(a)] for a in brightness],
              "gamma": [res["gamma"][float(g)] for g in gammas]}
    meta = {"brightness_deltas": [float(a) for a in brightness], "gammas": [float(g) for g in gammas],
            "images": f"first {len(y)} of {test.describe()}", "ref": "RLFAT Table 2, eqs. 11-12"}
    return arrays, meta


def _run_gradient_maps(run, n_images=10, indices=None, clip_std=3.0):
    test, _, _ = _test(run)
    idx = _pick(test, n_images, indices=indices)
    x, y = test.x[idx], test.y[idx]
    res = gradient_maps(run.model, x, y, clip_std)
    arrays = {"images": _u8(x), "labels": y.numpy(), "gradient": res["gradient"], "clipped": res["clipped"],
              "unclipped": res["unclipped"]}
    return arrays, {"indices": idx, "clip_std": clip_std, "ref": "FP&R Fig. 4"}


def _run_gradient_map_accuracy(run, classifier=None, n_train=None, n_test=None, clip_std=3.0):
    clf = _as_run(classifier if classifier is not None else natural_config(run.cfg), run)
    train, test = runs_mod.prepare_data(run.cfg)
    out, described = {}, {}
    for split, ds, n in (("train", train, n_train), ("test", test, n_test)):
        m = len(ds) if n is None else min(n, len(ds))
        out[split] = gradient_map_accuracy(clf.model, run.model, ds.x[:m], ds.y[:m], clip_std)
        described[split] = f"first {m} of {ds.describe()}"
    clf_acc = float(predict_correct(clf.model, test.x, test.y).float().mean())
    arrays = {"accuracy": [[out["train"]["with_clipping"], out["test"]["with_clipping"]],
                           [out["train"]["without_clipping"], out["test"]["without_clipping"]]]}
    meta = {"rows": ["with_clipping", "without_clipping"], "columns": ["train", "test"], "classifier_run": clf.id,
            "classifier_test_accuracy": clf_acc, "images": described, "clip_std": clip_std,
            "ref": "FP&R Table 4 (classifier: 88.79% natural test accuracy in the paper)"}
    return arrays, meta


def _run_normalized_gradient(run, n_images=10, digits=None, indices=None):
    test, _, _ = _test(run)
    idx = _pick(test, n_images, digits, indices)
    x, y = test.x[idx], test.y[idx]
    g = normalized_gradient(run.model, x, y)
    return {"images": _u8(x), "labels": y.numpy(), "normalized": g}, {"indices": idx, "ref": "AELF Fig. 2"}


def _run_gradient_signs(run, digits=(0, 1, 2, 3), thresholds=(1e-4, 1e-3, 1e-2), indices=None):
    test, _, _ = _test(run)
    idx = _pick(test, len(digits or ()), digits, indices)
    x, y = test.x[idx], test.y[idx]
    res = gradient_signs(run.model, x, y, thresholds)
    arrays = {"images": _u8(x), "labels": y.numpy(), "gradient": res["gradient"], "signs": res["signs"]}
    return arrays, {"indices": idx, "thresholds": [float(t) for t in thresholds],
                    "ref": "AELF Figs. 4 and 6 (thresholds not given in the paper)"}


def _run_smoothgrad(run, n_images=10, indices=None, n_samples=50, noise=0.15, seed=0):
    test, _, _ = _test(run)
    idx = _pick(test, n_images, indices=indices)
    x, y = test.x[idx], test.y[idx]
    res = smoothgrad(run.model, x, y, n_samples, noise, device_mod.generator(x.device, seed))
    correct = predict_correct(run.model, x, y)
    arrays = {"images": _u8(x), "labels": y.numpy(), "salience": res["salience"], "correct": correct.numpy()}
    return arrays, {"indices": idx, "n_samples": n_samples, "noise": noise, "seed": seed,
                    "ref": "RLFAT Figs. 3-4 (SmoothGrad, Smilkov et al. 2017)"}


def _run_attention_maps(run, n_images=10, indices=None):
    _require_attention(run.model)
    test, _, _ = _test(run)
    idx = _pick(test, n_images, indices=indices)
    x, y = test.x[idx], test.y[idx]
    w = attention_maps(run.model, x)
    return {"images": _u8(x), "labels": y.numpy(), "attention": w}, {"indices": idx, "ref": "FP&R Fig. 3"}


def _run_attention_rank_curve(run, n_train=None, n_test=None, eps=None, alpha=None, steps=None, seed=0):
    _require_attention(run.model)
    cfg = run.cfg
    eps = cfg.eps if eps is None else eps
    alpha = cfg.alpha if alpha is None else alpha
    steps = cfg.steps if steps is None else steps
    train, test = runs_mod.prepare_data(cfg)
    arrays, described = {}, {}
    for split, ds, n in (("train", train, n_train), ("test", test, n_test)):
        m = len(ds) if n is None else min(n, len(ds))
        res = attention_rank_curve(run.model, ds.x[:m], ds.y[:m], eps=eps, alpha=alpha, steps=steps, seed=seed)
        arrays[f"curve_{split}"] = res["curve"]
        arrays[f"distance_{split}"] = res["distance_by_rank"]
        described[split] = f"first {m} of {ds.describe()}"
    meta = {"attack": {"eps": eps, "alpha": alpha, "steps": steps, "random_start": True, "seed": seed},
            "images": described, "ref": "FP&R Fig. 2 (rank 0 = most robust feature)"}
    return arrays, meta


def _run_attention_comparison(run, other=None, n=None, n_images=10):
    _require_attention(run.model)
    oth = _as_run(other if other is not None else _other_attention_config(run.cfg), run)
    _require_attention(oth.model)
    test, x, y = _test(run, n)
    kinds = [getattr(r.model, "attention_kind", None) or dict(r.cfg.model_kw).get("attention") for r in (run, oth)]
    acc = attention_comparison({"this": run.model, "other": oth.model}, x, y)
    xs = test.x[:n_images]
    arrays = {"accuracy": [acc["this"], acc["other"]], "images": _u8(xs),
              "attention_this": attention_maps(run.model, xs), "attention_other": attention_maps(oth.model, xs)}
    meta = {"kinds": kinds, "runs": [run.id, oth.id], "images": f"first {len(y)} of {test.describe()}",
            "paper": {"nonlinear": 0.9287, "linear": 0.9134},
            "ref": "FP&R (IJCAI) sec. 4.3: natural training, non-linear vs linear attention"}
    return arrays, meta


#: name -> runner(run, **kw) -> (arrays, meta); used by `analyse`
ANALYSES: Dict[str, Callable[..., Tuple[dict, dict]]] = {
    "shifted_accuracy": _run_shifted,
    "shift_sweep": _run_shift_sweep,
    "loss_sensitivity": _run_loss_sensitivity,
    "gradient_maps": _run_gradient_maps,
    "gradient_map_accuracy": _run_gradient_map_accuracy,
    "normalized_gradient": _run_normalized_gradient,
    "gradient_signs": _run_gradient_signs,
    "smoothgrad": _run_smoothgrad,
    "attention_maps": _run_attention_maps,
    "attention_rank_curve": _run_attention_rank_curve,
    "attention_comparison": _run_attention_comparison,
}


def _canon(v):
    if isinstance(v, runs_mod.Run):
        return {"run": v.id}
    if isinstance(v, RunConfig):
        return {"run": v.run_id}
    if isinstance(v, Path):
        return {"run": v.name}
    if isinstance(v, (tuple, list)):
        return [_canon(i) for i in v]
    if isinstance(v, Mapping):
        return {str(k): _canon(i) for k, i in sorted(v.items())}
    if isinstance(v, float):
        return float(f"{v:.12g}")
    return v


def analysis_name(name: str, **kw) -> str:
    """Stored name `<analysis>-<hash of the arguments and library version>`."""
    text = json.dumps({"analysis": name, "kw": _canon(kw), "_version": __version__}, sort_keys=True)
    return f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def analyse(run, name: str, recompute: bool = False, **kw) -> Dict[str, Any]:
    """Run analysis `name` (see `ANALYSES`) on a trained run, store its arrays next to the run and
    return {'arrays', 'meta', 'name'} as `load_stored` reads them back. Cached: the same
    arguments load the stored file. Runs given as arguments (classifier=, other=) may be Runs,
    RunConfigs (trained when missing, like runs.train) or run folders."""
    if name not in ANALYSES:
        raise ValueError(f"unknown analysis {name!r}; choose one of {sorted(ANALYSES)}")
    stored = analysis_name(name, **kw)
    if is_current(run, stored) and not recompute:
        return load_stored(run, stored)
    t0 = time.perf_counter()
    arrays, meta = ANALYSES[name](run, **kw)
    meta = {**meta, "analysis": name, "kwargs": _canon(kw), "run_id": run.id, "weights": weights_of(run, kw),
            "version": __version__,
            "seconds": round(time.perf_counter() - t0, 3), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    store(run, stored, arrays, meta)
    return load_stored(run, stored)
