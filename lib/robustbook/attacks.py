"""White-box l-infinity attacks: PGD (CE, CW margin, TRADES KL) and FGSM.

Conventions
-----------
* Images are floating point in ``[0, 1]``, NCHW (any shape ``(N, ...)`` works);
  ``y`` holds integer class labels of shape ``(N,)``.
* Models return logits; input normalization, if any, lives inside the model.
* ``eps`` and ``alpha`` are in ``[0, 1]`` pixel units (``8/255``, not ``8``).

What one PGD step computes (identical, bit for bit, to ``torchattacks.PGD``
3.5.1 for ``loss='ce'`` on a deterministic device, outside
``robustbook.speed.fast()``; inside it the same function is computed on
channels_last images with BatchNorm folded into the convolutions, which
changes only float rounding -- see :mod:`robustbook.speed`)::

    grad  = d loss(model(x_adv), y) / d x_adv
    x_adv = x_adv + alpha * sign(grad)
    x_adv = clamp(x + clamp(x_adv - x, -eps, eps), 0, 1)

Semantic choices (see the docstrings for details)
-------------------------------------------------
* ``loss='ce'``: mean cross-entropy over the batch (same reduction as
  torchattacks, so the signs of the gradients agree bitwise).
* ``loss='cw'``: Madry's cifar10/mnist-challenge form, summed over the batch,
  ``-relu(z_y - max_{i != y} z_i + kappa)`` (= ``min(max_{i!=y} z_i - z_y,
  kappa) - kappa``), kappa = 50 by default.  The true class is **masked**
  out of the max (set to ``-inf``).  The official RLFAT code takes
  ``max((1 - onehot(y)) * z)``, i.e. the true class enters the max as a 0
  instead of being excluded: whenever all wrong logits are negative the
  "best other" logit is the constant 0 and the attack only pushes ``z_y``
  down (Madry's challenge code fixed this with ``- 1e4 * onehot``).  We
  deliberately do not reproduce that bug.
* ``loss='kl'``: the TRADES inner maximization, ``sum_n KL(p(x_n) || p(x_adv_n))``
  with ``p(x) = softmax(model(x))`` computed once, without gradient, before the
  loop.  ``y`` is not used by the loss.  The random start is
  ``x + 0.001 * N(0, 1)`` (not uniform); unlike TRADES we then project this
  start onto the feasible set (eps-ball and ``[0, 1]``) so that every returned
  iterate is valid.  With ``random_start=False`` the KL gradient at ``x`` is
  (numerically) zero, so always keep the random start for ``'kl'``.
* Random start for ``'ce'``/``'cw'``: ``x + U(-eps, eps)`` then ``clamp(0, 1)``
  (drawn with ``torch.empty_like(x).uniform_(-eps, eps, generator=...)``, the
  same draw torchattacks makes from the global generator).
* ``restarts > 1`` (needs a random start): for ``'ce'``/``'cw'`` each example
  keeps the iterate of the *first* restart that fools the model
  (``argmax != y``); an example that is never fooled keeps the iterate with the
  highest per-example loss.  For ``'kl'`` each example keeps the iterate with
  the highest per-example KL.  With ``record_steps`` this selection is done
  independently for every recorded step.
* The model runs in eval mode by default; ``bn_train=True`` puts only its
  BatchNorm layers in train mode (batch statistics, and, as with PyTorch's
  train mode and TF's ``batch_norm(updates_collections=None)`` in Madry's
  ``model.py``, which RLFAT builds on, the running statistics are updated
  by every attack forward pass).  Every module's training flag and every parameter's
  ``requires_grad`` flag are restored afterwards, also on exceptions.
  Parameters get ``requires_grad=False`` while attacking and gradients are
  taken with ``torch.autograd.grad`` w.r.t. the input only, so ``p.grad`` is
  never touched.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from typing import Callable, Dict, Iterable, Iterator, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from . import speed as _speed

__all__ = [
    "ATTACKS",
    "KL_START_STD",
    "LOSSES",
    "accuracy",
    "ce_loss",
    "cw_margin",
    "fgsm",
    "get",
    "kl_divergence",
    "pgd",
]

#: standard deviation of the Gaussian start of the TRADES KL attack
KL_START_STD = 1e-3


# ---------------------------------------------------------------------------
# losses (per example; the attack maximizes them)
# ---------------------------------------------------------------------------


def ce_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example cross-entropy, shape ``(N,)``."""
    return F.cross_entropy(logits, y, reduction="none")


def cw_margin(logits: torch.Tensor, y: torch.Tensor, kappa: float = 50.0) -> torch.Tensor:
    """Per-example CW margin loss of Madry's challenge code, shape ``(N,)``.

    ``-relu(z_y - max_{i != y} z_i + kappa)``, i.e.
    ``min(max_{i != y} z_i - z_y, kappa) - kappa``: always ``<= 0``, it grows
    with the margin by which the best wrong class beats the true class and
    saturates (value 0, zero gradient) once that margin reaches ``kappa``.
    The true class is masked out of the max (it is set to ``-inf``).

    Example: logits ``[2, 5, 1]``, ``y = 0``, ``kappa = 1``: the best other
    logit is 5, ``-relu(2 - 5 + 1) = 0``; with ``y = 1``: ``-relu(5 - 2 + 1)
    = -4``.
    """
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise ValueError(
            f"cw_margin needs logits of shape (N, C) with C >= 2, got {tuple(logits.shape)}"
        )
    y = y.long()
    true_logit = logits.gather(1, y[:, None]).squeeze(1)
    true_mask = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, y[:, None], True)
    best_other = logits.masked_fill(true_mask, float("-inf")).amax(dim=1)
    return -F.relu(true_logit - best_other + kappa)


def kl_divergence(logits: torch.Tensor, log_p_clean: torch.Tensor) -> torch.Tensor:
    """Per-example ``KL(p_clean || softmax(logits))``, shape ``(N,)``.

    ``log_p_clean`` are log-probabilities (``log_softmax`` of the clean logits).
    """
    log_q = F.log_softmax(logits, dim=1)
    return F.kl_div(log_q, log_p_clean, reduction="none", log_target=True).sum(dim=1)


def _ce_entry(logits, y, kappa=50.0, log_p_clean=None):
    return ce_loss(logits, y)


def _cw_entry(logits, y, kappa=50.0, log_p_clean=None):
    return cw_margin(logits, y, kappa)


def _kl_entry(logits, y, kappa=50.0, log_p_clean=None):
    if log_p_clean is None:
        raise ValueError("the 'kl' loss needs log_p_clean = log_softmax(model(x)) of the clean input")
    return kl_divergence(logits, log_p_clean)


#: name -> per-example loss ``f(logits, y, kappa=50.0, log_p_clean=None) -> (N,)``
#: that the attack of that name maximizes.
LOSSES: Dict[str, Callable[..., torch.Tensor]] = {
    "ce": _ce_entry,
    "cw": _cw_entry,
    "kl": _kl_entry,
}


def _batch_objective(loss: str, logits, y, kappa, log_p_clean) -> torch.Tensor:
    """The scalar whose input gradient drives a step (reductions documented above)."""
    if loss == "ce":
        # mean reduction, exactly as torchattacks.PGD (nn.CrossEntropyLoss())
        return F.cross_entropy(logits, y)
    if loss == "cw":
        return cw_margin(logits, y, kappa).sum()
    # TRADES: KLDivLoss(size_average=False), i.e. a sum over the batch
    return F.kl_div(F.log_softmax(logits, dim=1), log_p_clean, reduction="sum", log_target=True)


# ---------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _check_eps(eps) -> float:
    if isinstance(eps, torch.Tensor) and eps.numel() == 1:
        eps = eps.item()
    if not _is_number(eps) or not math.isfinite(eps):
        raise ValueError(f"eps must be a finite number in [0, 1] (l-inf radius in [0,1] pixel units, e.g. 8/255), got {eps!r}")
    eps = float(eps)
    if eps < 0:
        raise ValueError(f"eps must be >= 0 (it is the l-inf radius in [0,1] pixel units, e.g. 8/255), got {eps}")
    if eps > 1:
        hint = f" Did you mean {eps:g}/255 = {eps / 255:.4f}?" if eps <= 255 else ""
        raise ValueError(
            f"eps={eps:g} is larger than 1, but images are in [0, 1] so eps must be in [0, 1]."
            f"{hint} Pass eps on the [0,1] scale, e.g. eps=8/255."
        )
    return eps


def _check_alpha(alpha) -> float:
    if isinstance(alpha, torch.Tensor) and alpha.numel() == 1:
        alpha = alpha.item()
    if not _is_number(alpha) or not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"alpha (the step size) must be a number > 0 in [0,1] pixel units, e.g. 2/255, got {alpha!r}")
    alpha = float(alpha)
    if alpha > 1:
        hint = f" Did you mean {alpha:g}/255 = {alpha / 255:.4f}?" if alpha <= 255 else ""
        raise ValueError(
            f"alpha={alpha:g} is larger than 1, but images are in [0, 1] so the step size must be in (0, 1].{hint}"
        )
    return alpha


def _check_batch(x, y, what: str = "x") -> Tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"{what} must be a floating-point torch.Tensor of images in [0, 1], got {type(x).__name__}"
                         + (f" of dtype {x.dtype}" if isinstance(x, torch.Tensor) else ""))
    if x.dim() < 2:
        raise ValueError(f"{what} must have a batch dimension, shape (N, C, H, W) or (N, D); got {tuple(x.shape)}")
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError("y must be a 1-D integer tensor of class labels, shape (N,)"
                         + (f"; got dtype {y.dtype}, shape {tuple(y.shape)}" if isinstance(y, torch.Tensor) else f"; got {type(y).__name__}"))
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must have the same batch size: x.shape[0]={x.shape[0]} but y.shape[0]={y.shape[0]}")
    if y.device != x.device:
        raise ValueError(f"x and y must be on the same device, got {x.device} and {y.device}; move y with y.to(x.device)")
    if x.numel() and not bool(((x >= 0) & (x <= 1)).all()):
        lo, hi = torch.aminmax(x.detach())
        raise ValueError(
            f"{what} must hold images in [0, 1] (got values in [{lo.item():.4g}, {hi.item():.4g}], or NaN). "
            "Pass unnormalized images and put any normalization inside the model; divide 0-255 images by 255."
        )
    return x.detach(), y.detach().long()


def _check_record(record_steps, steps: int) -> Tuple[int, ...]:
    if record_steps is None:
        return (steps,)
    if isinstance(record_steps, (str, bytes)) or not isinstance(record_steps, Iterable):
        raise ValueError(f"record_steps must be a list of step counts such as [5, 20, 100, 200], got {record_steps!r}")
    rec = list(record_steps)
    if not rec:
        raise ValueError("record_steps is empty: pass e.g. record_steps=[5, 20, 100, 200], or None to get a tensor")
    for k in rec:
        if not _is_int(k) or k < 0 or k > steps:
            raise ValueError(
                f"every entry of record_steps must be an int in [0, steps={steps}], got {k!r}; "
                f"set steps=max(record_steps)"
            )
    return tuple(sorted(set(int(k) for k in rec)))


# ---------------------------------------------------------------------------
# model state
# ---------------------------------------------------------------------------


@contextlib.contextmanager
def _attack_mode(model: nn.Module, bn_train: bool) -> Iterator[None]:
    """Eval mode (BatchNorm in train mode if ``bn_train``), frozen parameters;
    restore every module's mode and every parameter's ``requires_grad`` after."""
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        model.eval()
        if bn_train:
            for m in model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.training = True
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for m, training in modes:
            m.training = training
        for p, flag in flags:
            p.requires_grad_(flag)


# ---------------------------------------------------------------------------
# PGD
# ---------------------------------------------------------------------------


def _project_(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """In place: ``x_adv <- clamp(x + clamp(x_adv - x, -eps, eps), 0, 1)``.

    Bitwise the same as the out-of-place formula (float addition commutes)."""
    return x_adv.sub_(x).clamp_(-eps, eps).add_(x).clamp_(0.0, 1.0)


def _start(x, eps, loss, random_start, generator, x_init) -> torch.Tensor:
    """A fresh tensor (the loop updates it in place)."""
    if x_init is not None:
        return x_init.detach().clone()
    if not random_start:
        return x.clone()
    if loss == "kl":
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return _project_(x + KL_START_STD * noise, x, eps)
    noise = torch.empty_like(x).uniform_(-eps, eps, generator=generator)
    return (x + noise).clamp_(0.0, 1.0)


def _score(loss, logits, y, kappa, log_p_clean) -> Tuple[torch.Tensor, torch.Tensor]:
    """(fooled, per-example loss) used to pick among restarts."""
    fooled = logits.argmax(dim=1) != y
    return fooled, LOSSES[loss](logits, y, kappa=kappa, log_p_clean=log_p_clean)


def _pgd_until_fooled(net, x_adv, x_ref, y, eps, alpha, n_steps, loss, kappa, record_set, iterates) -> None:
    """The PGD loop of ``pgd(..., stop_when_fooled=True)``: steps only the examples not yet
    fooled (their iterate i, predicted by the step's own forward pass, is kept when it fools).
    Fills ``iterates`` with copies of the whole batch at every recorded step and at n_steps."""
    active = torch.arange(len(y), device=y.device)  # examples still attacked
    layout = torch.channels_last if x_adv.dim() == 4 and not x_adv.is_contiguous() else torch.contiguous_format
    for i in range(n_steps):
        whole = len(active) == len(y)
        xa = x_adv if whole else x_adv[active].contiguous(memory_format=layout)
        xa.requires_grad_(True)
        logits = net(xa)
        going = logits.detach().argmax(dim=1) == y[active]  # not fooled by iterate i
        if i in record_set:
            iterates[i] = x_adv.detach().clone()
        if not bool(going.any()):
            active = active[:0]
            break
        objective = _batch_objective(loss, logits[going], y[active][going], kappa, None)
        (grad,) = torch.autograd.grad(objective, xa)
        xa = xa.detach()
        if bool(going.all()):
            xa.add_(grad.sign_(), alpha=alpha)
            _project_(xa, x_ref if whole else x_ref[active], eps)
            if not whole:
                x_adv[active] = xa
            else:
                x_adv = xa
            continue
        keep = active[going]
        step = xa[going].add_(grad[going].sign_(), alpha=alpha)
        x_adv = x_adv.detach()
        x_adv[keep] = _project_(step, x_ref[keep], eps)
        active = keep
    x_adv = x_adv.detach()
    for k in sorted(record_set | {n_steps}):  # steps not reached: everything was fooled earlier
        if k not in iterates:
            iterates[k] = x_adv.clone()


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    alpha: float,
    steps: int,
    random_start: bool = True,
    loss: str = "ce",
    restarts: int = 1,
    record_steps: Optional[Sequence[int]] = None,
    kappa: float = 50.0,
    bn_train: bool = False,
    generator: Optional[torch.Generator] = None,
    x_init: Optional[torch.Tensor] = None,
    stop_when_fooled: bool = False,
) -> Union[torch.Tensor, Dict[int, torch.Tensor]]:
    """Untargeted l-infinity PGD (Madry et al.) maximizing ``loss``.

    Args:
        model: maps images in [0, 1] to logits.
        x, y: images ``(N, ...)`` in [0, 1] and integer labels ``(N,)``.
        eps: l-inf radius in [0, 1] pixel units (``8/255``, not ``8``).
        alpha: step size, in (0, 1].
        steps: number of sign-gradient steps (>= 0).
        random_start: start from ``clamp(x + U(-eps, eps), 0, 1)`` (``'ce'``,
            ``'cw'``) or from ``x + 0.001 * N(0, 1)`` projected (``'kl'``);
            otherwise from ``x``.
        loss: ``'ce'`` (mean cross-entropy), ``'cw'`` (:func:`cw_margin`
            with ``kappa``, summed) or ``'kl'`` (TRADES, summed KL to the
            clean prediction).
        restarts: independent random starts; per example the first restart
            that fools the model is kept (``'kl'``: the highest KL), see the
            module docstring.
        record_steps: e.g. ``[5, 20, 100, 200]``; runs ``max(record_steps)``
            steps once and returns ``{k: x_adv after k steps}``.  Entries must
            lie in ``[0, steps]``; steps beyond ``max(record_steps)`` are not
            run (their result would not be returned).
        kappa: CW confidence (Madry's challenge and RLFAT use 50).
        bn_train: keep BatchNorm layers in train mode (as the official TF
            code did); the rest of the model is in eval mode.
        generator: ``torch.Generator`` on ``x``'s device for the random start.
        x_init: explicit starting point (no random start is drawn); must be
            in [0, 1] and within ``eps`` of ``x``; not modified.
        stop_when_fooled: freeze an example at the first iterate the model
            misclassifies and attack only the others from then on (``'ce'``
            and ``'cw'``; the predictions come from the forward pass the step
            makes anyway).  The result after k steps is then the first fooling
            iterate up to k, else iterate k: an example counts as broken if any
            iterate fooled it (AutoAttack's convention), so accuracy can only
            be lower than with the last iterate, and never rises with k.  Each
            fooled example costs no further steps, which makes the attack of a
            model with little robustness nearly free.

    Returns:
        ``x_adv`` (detached, same shape as ``x``), or a dict ``{k: x_adv}``
        if ``record_steps`` is given.
    """
    eps = _check_eps(eps)
    alpha = _check_alpha(alpha)
    if not _is_int(steps) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    steps = int(steps)
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {sorted(LOSSES)}")
    if not _is_int(restarts) or restarts < 1:
        raise ValueError(f"restarts must be an int >= 1, got {restarts!r}")
    restarts = int(restarts)
    if not _is_number(kappa) or not math.isfinite(kappa) or kappa < 0:
        raise ValueError(f"kappa (CW confidence) must be a finite number >= 0, e.g. 50, got {kappa!r}")
    kappa = float(kappa)
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module returning logits, got {type(model).__name__}")
    x, y = _check_batch(x, y)
    record = _check_record(record_steps, steps)
    if x_init is not None:
        if not isinstance(x_init, torch.Tensor) or x_init.shape != x.shape or x_init.dtype != x.dtype \
                or x_init.device != x.device:
            raise ValueError(
                "x_init must be a tensor with the shape, dtype and device of x "
                f"({tuple(x.shape)}, {x.dtype}, {x.device})"
            )
        _check_batch(x_init, y, what="x_init")
        if x.numel() and (x_init.detach() - x).abs().max().item() > eps + 1e-6:
            raise ValueError(f"x_init must lie within eps={eps:g} of x (l-inf); project it first")
    if stop_when_fooled and (loss == "kl" or bn_train):
        raise ValueError(
            "stop_when_fooled needs loss='ce' or 'cw' (the KL attack has no 'fooled') and bn_train=False "
            "(with batch statistics the examples of a batch are not independent)"
        )
    if restarts > 1 and (x_init is not None or not random_start):
        raise ValueError(
            "restarts > 1 needs random_start=True and no x_init (otherwise every restart is identical)"
        )
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        if generator.device.type != x.device.type:
            raise ValueError(
                f"generator is on {generator.device} but x is on {x.device}: "
                "create it with robustbook.device.generator(x.device, seed)"
            )

    n_steps = record[-1]
    record_set = set(record)
    track = restarts > 1

    with _attack_mode(model, bn_train), torch.inference_mode(False), torch.enable_grad():
        if x.is_inference():  # called under torch.inference_mode(): get normal tensors
            x = x.clone()
        if y.is_inference():
            y = y.clone()
        # fast path (inside speed.fast()): channels_last images and an attack copy
        # with BatchNorm folded into the convs; the same function up to float rounding
        net, x_ref = model, x
        fast = _speed.current()
        if fast is not None and x.numel():
            if fast.channels_last:
                x_ref = _speed.format_input(x)
            if fast.fold_bn and not bn_train:
                net = _speed.attack_model(model, x_ref)
        log_p_clean = None
        if loss == "kl":
            with torch.no_grad():
                log_p_clean = F.log_softmax(net(x_ref), dim=1)

        best: Dict[int, torch.Tensor] = {}
        best_fooled: Dict[int, torch.Tensor] = {}
        best_value: Dict[int, torch.Tensor] = {}

        for restart in range(restarts):
            x_adv = _start(x, eps, loss, random_start, generator, x_init)
            if x_ref is not x:  # the start is drawn in x's layout, then reordered
                x_adv = x_adv.contiguous(memory_format=torch.channels_last)
            iterates: Dict[int, torch.Tensor] = {}
            scores: Dict[int, Tuple[torch.Tensor, torch.Tensor]] = {}
            if stop_when_fooled:
                _pgd_until_fooled(net, x_adv, x_ref, y, eps, alpha, n_steps, loss, kappa, record_set, iterates)
                x_adv = iterates[n_steps]
                if track:
                    with torch.no_grad():
                        scores.update({k: _score(loss, net(iterates[k]), y, kappa, log_p_clean) for k in record})
            for i in range(0 if stop_when_fooled else n_steps):
                x_adv.requires_grad_(True)
                logits = net(x_adv)
                objective = _batch_objective(loss, logits, y, kappa, log_p_clean)
                (grad,) = torch.autograd.grad(objective, x_adv)
                x_adv = x_adv.detach()
                if i in record_set:  # iterate after i steps, before stepping on
                    iterates[i] = x_adv.clone()
                    if track:
                        with torch.no_grad():
                            scores[i] = _score(loss, logits.detach(), y, kappa, log_p_clean)
                x_adv.add_(grad.sign_(), alpha=alpha)
                _project_(x_adv, x_ref, eps)
            iterates[n_steps] = x_adv
            if track and n_steps not in scores:
                with torch.no_grad():
                    scores[n_steps] = _score(loss, net(x_adv), y, kappa, log_p_clean)

            if restart == 0:
                best = iterates
                if track:
                    for k, (fooled, value) in scores.items():
                        best_fooled[k], best_value[k] = fooled, value
                continue
            for k in record:
                fooled, value = scores[k]
                if loss == "kl":
                    replace = value > best_value[k]
                else:  # first restart that fools; else the highest loss
                    replace = ~best_fooled[k] & (fooled | (value > best_value[k]))
                best[k] = torch.where(replace.view(-1, *([1] * (x.dim() - 1))), iterates[k], best[k])
                best_fooled[k] = torch.where(replace, fooled, best_fooled[k])
                best_value[k] = torch.where(replace, value, best_value[k])

    if record_steps is None:
        return _speed.restore_format(best[steps], x)
    return {k: _speed.restore_format(best[k], x) for k in record}


def fgsm(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    random_start: bool = False,
    alpha: Optional[float] = None,
    bn_train: bool = False,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """FGSM (Goodfellow et al.): one CE sign-gradient step of size ``alpha``.

    ``random_start=True`` is the variant of Wong et al. 2020 ("Fast is better
    than free"): start at ``clamp(x + U(-eps, eps), 0, 1)``, step ``alpha``
    (default ``1.25 * eps``), project back onto the eps-ball and ``[0, 1]``.
    Without random start ``alpha`` defaults to ``eps``.  Same model-state
    handling as :func:`pgd`.
    """
    eps = _check_eps(eps)
    if alpha is None:
        alpha = 1.25 * eps if random_start else eps
        if alpha == 0:  # eps == 0: nothing to do, but still validate the inputs
            return pgd(model, x, y, 0.0, 1.0, 0, random_start=False, bn_train=bn_train)
        alpha = min(alpha, 1.0)
    return pgd(model, x, y, eps, alpha, 1, random_start=random_start, loss="ce",
               bn_train=bn_train, generator=generator)


# ---------------------------------------------------------------------------
# registry and evaluation helper
# ---------------------------------------------------------------------------

#: name -> attack callable ``f(model, x, y, eps, ...)``
ATTACKS: Dict[str, Callable[..., torch.Tensor]] = {
    "pgd": pgd,
    "fgsm": fgsm,
}


def get(name: str) -> Callable[..., torch.Tensor]:
    """The attack registered as ``name`` (see :data:`ATTACKS`)."""
    try:
        return ATTACKS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown attack {name!r}; available: {', '.join(sorted(ATTACKS))}") from None


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Fraction of ``x`` that ``model`` classifies as ``y``, in eval mode and
    ``torch.inference_mode``, ``batch_size`` images at a time (moved to the
    model's device).  The model's modes are restored afterwards."""
    if not _is_int(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor) or x.shape[0] != y.shape[0]:
        raise ValueError("x and y must be tensors with the same batch size")
    n = x.shape[0]
    if n == 0:
        raise ValueError("accuracy of an empty batch is undefined: pass at least one example")
    param = next(model.parameters(), None)
    device = param.device if param is not None else x.device
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with torch.inference_mode():
            correct = torch.zeros((), dtype=torch.long, device=device)
            for start in range(0, n, batch_size):
                xb = x[start:start + batch_size].to(device)
                yb = y[start:start + batch_size].to(device)
                correct += (model(xb).argmax(dim=1) == yb).sum()
        return correct.item() / n
    finally:
        for m, training in modes:
            m.training = training
