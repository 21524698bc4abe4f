"""Fast paths for attacks and training: the same functions, computed in less time.

By default :func:`robustbook.attacks.pgd` does exactly torchattacks' arithmetic
(bit for bit).  Inside ``with speed.fast():`` it computes the same function
with two changes that alter only float rounding:

* **channels_last**: the images are handed to the model in NHWC memory order
  (oneDNN/cuDNN convolutions are faster that way); the random start is drawn
  in NCHW order as before, so a seeded attack starts from the same point, and
  ``x_adv`` is returned in the memory format of ``x``.
* **BatchNorm folding**: the attack runs on an *attack copy* of the model
  (:func:`attack_model`) in which every BatchNorm that directly follows a
  convolution is folded into it (eval mode: ``BN(conv(x)) = conv'(x)`` with
  ``w' = w * g / sqrt(var + eps)`` and ``b' = beta - mean * g / sqrt(var + eps)``).
  The copy shares every other parameter and buffer with the model, is cached
  per model, and re-folds (about a millisecond for a ResNet) whenever a folded
  weight or BatchNorm statistic changed, i.e. after every optimizer step.
  Candidate pairs are found by running the model once with hooks (a BN whose
  input tensor *is* a conv's output); each fold is then checked once per model
  structure on a private copy with random weights and BatchNorm statistics (a
  fresh BN is nearly the identity and would hide a wrong fold): pairs whose
  conv output is also used elsewhere (WRN's identity shortcut), or with an
  in-place op in between, are left unfolded; if nothing folds, the model
  itself is used.  Attacks with ``bn_train=True`` (batch statistics) never
  use the copy.  The copy is rebuilt when modules, parameters or buffers are
  replaced; plain tensor attributes (not parameters or buffers) are
  snapshotted when it is built.

The training loop (:func:`robustbook.runs.train`) runs in ``fast()`` mode and
keeps the model in channels_last unless ``ROBUSTBOOK_FAST=0``.  Reduced
precision is separate and explicit: ``torch.autocast`` (``RunConfig.precision``).

Measured on the benchmark machine (2 EPYC cores, fp32, narrow Madry ResNet,
batch 128): channels_last about 1.25x, folding another 1.1x; see
``data/bench/`` and :mod:`robustbook.bench`.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import os
import weakref
from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple

import torch
from torch import nn

from . import device as device_mod

__all__ = ["Settings", "fast", "current", "enabled_by_default", "attack_model", "attack_copy_reason",
           "prepare_model", "format_input", "restore_format", "fold_pairs", "valid_pairs"]


@dataclass(frozen=True)
class Settings:
    """What ``fast()`` turns on."""

    channels_last: bool = True
    fold_bn: bool = True


_STATE: contextvars.ContextVar = contextvars.ContextVar("robustbook_speed", default=None)


@contextlib.contextmanager
def fast(enabled: bool = True, *, channels_last: bool = True, fold_bn: bool = True) -> Iterator[None]:
    """Within this block attacks use the fast path (``enabled=False``: the exact path)."""
    token = _STATE.set(Settings(channels_last=channels_last, fold_bn=fold_bn) if enabled else None)
    try:
        yield
    finally:
        _STATE.reset(token)


def current() -> Optional[Settings]:
    """The active settings, or None outside ``fast()`` (the exact path)."""
    return _STATE.get()


def enabled_by_default() -> bool:
    """Whether the training loop uses the fast path: unless ``ROBUSTBOOK_FAST=0``."""
    return os.environ.get("ROBUSTBOOK_FAST", "1").strip().lower() not in ("0", "false", "no", "off")


# --------------------------------------------------------------------------- memory format
def _has_conv2d(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def prepare_model(model: nn.Module) -> nn.Module:
    """The model with its 4-d weights in channels_last (in place; returned for chaining).
    Models without 2-d convolutions are left alone."""
    if _has_conv2d(model):
        model.to(memory_format=torch.channels_last)
    return model


def format_input(x: torch.Tensor) -> torch.Tensor:
    """``x`` in channels_last if it is a 4-d batch (a no-op otherwise)."""
    if x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def restore_format(out: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``out`` in the memory format of ``like`` (NCHW-contiguous ``like`` -> contiguous ``out``)."""
    if like.is_contiguous() and not out.is_contiguous():
        return out.contiguous()
    return out


# --------------------------------------------------------------------------- BatchNorm folding
def fold_pairs(model: nn.Module, probe: torch.Tensor) -> List[Tuple[str, str]]:
    """(conv name, BatchNorm name) pairs where the BatchNorm's input *is* the conv's
    output, found by running ``model`` once on ``probe`` (no grad) with hooks.  Only
    plain ``nn.Conv2d`` and ``nn.BatchNorm2d`` with running statistics qualify.  The
    caller verifies the fold numerically (the conv output could also be used elsewhere)."""
    outputs = {}
    pairs: List[Tuple[str, str]] = []
    hooks = []

    def conv_hook(name):
        def hook(module, inputs, output):
            outputs[id(output)] = (name, output)
        return hook

    def bn_hook(name):
        def hook(module, inputs, output):
            inp = inputs[0] if inputs else None
            hit = outputs.get(id(inp))
            if hit is not None and hit[1] is inp:
                pairs.append((hit[0], name))
        return hook

    for name, m in model.named_modules():
        if type(m) is nn.Conv2d:
            hooks.append(m.register_forward_hook(conv_hook(name)))
        elif type(m) is nn.BatchNorm2d and m.track_running_stats and m.running_mean is not None:
            hooks.append(m.register_forward_hook(bn_hook(name)))
    try:
        with torch.no_grad():
            model(probe)
    finally:
        for h in hooks:
            h.remove()
    seen_conv, seen_bn, out = set(), set(), []
    for c, b in pairs:  # a module called twice must pair the same way every time
        if c in seen_conv or b in seen_bn:
            out = [(pc, pb) for pc, pb in out if pc != c and pb != b]
            continue
        seen_conv.add(c)
        seen_bn.add(b)
        out.append((c, b))
    return out


def _get(root: nn.Module, name: str) -> nn.Module:
    return root.get_submodule(name) if name else root


def _set(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(_get(root, parent), leaf, module)


def _tensors(model: nn.Module) -> List[torch.Tensor]:
    return [t for t in list(model.parameters()) + list(model.buffers())]


def _structure_key(model: nn.Module) -> tuple:
    mods = tuple(id(m) for m in model.modules())
    tens = tuple((id(t), t.data_ptr(), t.dtype, t.device) for t in _tensors(model))
    return mods + tens


def _fold_copy(model: nn.Module, pairs) -> Tuple[nn.Module, list]:
    """An eval-mode copy of ``model`` sharing all its parameters and buffers, with each
    (conv, BN) pair replaced by a fused conv (new weight tensors) and an Identity."""
    dup = copy.deepcopy(model, {id(t): t for t in _tensors(model)})
    sources = []
    for c_name, b_name in pairs:
        conv, bn = _get(model, c_name), _get(model, b_name)
        fused = torch.nn.utils.skip_init(  # no init: it would draw from the global RNG
            nn.Conv2d, conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
            conv.dilation, conv.groups, True, conv.padding_mode, device=conv.weight.device, dtype=conv.weight.dtype)
        fused.weight.requires_grad_(False)
        fused.bias.requires_grad_(False)
        if conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous():
            fused.weight.data = fused.weight.data.contiguous(memory_format=torch.channels_last)
        _set(dup, c_name, fused)
        _set(dup, b_name, nn.Identity())
        sources.append((conv, bn, fused))
    _refold(sources)
    return dup.eval(), sources


def _refold(sources) -> None:
    """Write ``w * g / sqrt(var + eps)`` and ``beta - mean * g / sqrt(var + eps)`` (plus
    the scaled conv bias) into the fused convs."""
    with torch.no_grad(), torch.autocast("cpu", enabled=False), _no_cuda_autocast():
        for conv, bn, fused in sources:
            w = conv.weight
            scale = torch.rsqrt(bn.running_var.to(w.dtype) + bn.eps)
            if bn.weight is not None:
                scale = scale * bn.weight.to(w.dtype)
            shift = -bn.running_mean.to(w.dtype) * scale
            if bn.bias is not None:
                shift = shift + bn.bias.to(w.dtype)
            if conv.bias is not None:
                shift = shift + conv.bias * scale
            fused.weight.copy_(w * scale.view(-1, 1, 1, 1))
            fused.bias.copy_(shift)


def _randomized(model: nn.Module) -> nn.Module:
    """A private copy with random conv weights and BatchNorm statistics / affine
    parameters (fixed seed; the global RNG is not touched), so that a wrong fold
    shows even while the real BatchNorms are still near identity (fresh init)."""
    test = copy.deepcopy(model).eval()
    g = device_mod.generator(device_mod.HOST, 0)  # host draws, copied onto each tensor's device

    def rnd(t, scale=1.0, shift=0.0, uniform=False):
        r = (torch.rand if uniform else torch.randn)(t.shape, generator=g, device=device_mod.HOST)
        t.copy_((r * scale + shift).to(t.device, t.dtype))

    with torch.no_grad():
        for m in test.modules():
            if type(m) is nn.Conv2d:
                rnd(m.weight, (2.0 / m.weight[0].numel()) ** 0.5)
                if m.bias is not None:
                    rnd(m.bias, 0.1)
            elif isinstance(m, nn.BatchNorm2d) and m.running_mean is not None:
                rnd(m.running_mean, 0.5)
                rnd(m.running_var, 1.5, 0.5, uniform=True)
                if m.weight is not None:
                    rnd(m.weight, 1.0, 0.5, uniform=True)
                    m.weight[1::2] *= -1
                if m.bias is not None:
                    rnd(m.bias, 0.5)
    return test


def _agrees(a: nn.Module, b: nn.Module, probe: torch.Tensor) -> bool:
    with torch.no_grad():
        want, got = a(probe).float(), b(probe).float()
    scale = 1.0 + float(want.abs().max())
    return want.shape == got.shape and bool(((want - got).abs() <= 1e-3 * scale).all())


def valid_pairs(model: nn.Module, pairs, probe: torch.Tensor) -> list:
    """The pairs whose fold is exact, checked on a randomized private copy of the model
    (a conv output also used elsewhere, or an in-place op between conv and BN, shows
    as a mismatch): all pairs if they fold together, else those that fold alone
    (if they then fold together)."""
    test = _randomized(model)
    if _agrees(test, _fold_copy(test, pairs)[0], probe):
        return list(pairs)
    good = [p for p in pairs if _agrees(test, _fold_copy(test, [p])[0], probe)]
    if good and _agrees(test, _fold_copy(test, good)[0], probe):
        return good
    return []


class _AttackCopy:
    """The folded eval-mode copy of one model and what it was built from."""

    def __init__(self, model: nn.Module, probe: torch.Tensor):
        self.key = _structure_key(model)
        self.copy: Optional[nn.Module] = None
        self.sources: list = []
        self.versions: Optional[tuple] = None
        self.reason = ""
        modes = [(m, m.training) for m in model.modules()]
        try:
            model.eval()
            # checked in full precision (under autocast, bf16 rounding would fail every check)
            with torch.autocast("cpu", enabled=False), _no_cuda_autocast():
                pairs = fold_pairs(model, probe)
                good = valid_pairs(model, pairs, probe) if pairs else []
            if not pairs:
                self.reason = "no conv -> BatchNorm pair"
                return
            if not good:
                self.reason = "folded copy disagreed with the model on the probe batch"
                return
            if len(good) < len(pairs):
                self.reason = f"{len(pairs) - len(good)} of {len(pairs)} conv -> BatchNorm pairs not foldable"
            self.copy, self.sources = _fold_copy(model, good)
            self.versions = self._source_versions()
        except Exception as err:  # e.g. a module that cannot be deep-copied: use the model itself
            self.copy, self.sources = None, []
            self.reason = f"no attack copy: {type(err).__name__}: {str(err)[:200]}"
        finally:
            for m, t in modes:
                m.training = t

    def _source_versions(self) -> tuple:
        out = []
        for conv, bn, _ in self.sources:
            for t in (conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var):
                if t is not None:
                    out.append((t._version, t.data_ptr()))
        return tuple(out)

    def refresh(self) -> None:
        """Recompute the folded weights if a source changed since the last fold."""
        versions = self._source_versions()
        if versions != self.versions:
            _refold(self.sources)
            self.versions = versions


def _no_cuda_autocast():
    if torch.cuda.is_available():
        return torch.autocast("cuda", enabled=False)
    return contextlib.nullcontext()


_CACHE: "weakref.WeakKeyDictionary[nn.Module, _AttackCopy]" = weakref.WeakKeyDictionary()


def attack_model(model: nn.Module, probe: torch.Tensor) -> nn.Module:
    """An eval-mode module computing ``model``'s eval-mode function with BatchNorms
    folded into the preceding convolutions (or ``model`` itself when nothing folds).

    Cached per model; rebuilt when the model's modules or tensors are replaced,
    re-folded when a folded weight or statistic changed in place.  ``probe``
    (a few inputs) is used only when the copy is (re)built.  Call it with the
    model in eval mode (as the attacks do): only the eval-mode function is folded.
    """
    entry = _CACHE.get(model)
    if entry is None or entry.key != _structure_key(model):
        entry = _AttackCopy(model, probe[:2].detach())
        _CACHE[model] = entry
    if entry.copy is None:
        return model
    entry.refresh()
    return entry.copy


def attack_copy_reason(model: nn.Module) -> str:
    """Why ``model`` has no folded copy ('' if it has one or was never folded)."""
    entry = _CACHE.get(model)
    return entry.reason if entry is not None else ""
