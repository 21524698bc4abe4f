"""Training losses ("methods") of the three papers, as pure functions.

Every method is a :class:`Method` record in :data:`METHODS`; its ``loss`` has
the signature ``loss(model, x, y, cfg, *, generator=None) -> (loss, logs)``:

* ``model`` is a :mod:`robustbook.models` model (``features``, ``head``,
  ``head(features(x)) == model(x)``), already in train mode: the loss never
  switches modes (the attack does its own switching and restores the mode);
* ``x`` are images in [0, 1] (NCHW), ``y`` integer labels;
* ``cfg`` is a :class:`robustbook.config.RunConfig` (any object with the
  same attributes works, which the tests use);
* ``generator`` (optional ``torch.Generator``) is passed to the attack and to
  RBS; ``None`` draws from torch's global RNG, which the training loop seeds;
* ``loss`` is a scalar tensor to back-propagate; ``logs`` a dict of detached
  scalar tensors (never ``.item()``: that would sync CUDA on every step).

The loss makes no optimizer call and freezes nothing.  The parameters a run
optimizes come from :func:`trainable_parameters` (AELFs leaves the
pre-trained head out).  :func:`check_config` is called by ``RunConfig`` at
construction and enforces the per-method requirements declared on the
records (``Method.requires`` plus the generic flags).

Method overview (the papers' equations; ``CE`` = mean cross entropy, ``z`` =
logits, ``f``/``G`` = ``model.features``, ``x'`` = PGD adversary)::

  st            CE(x)
  pgd_at        CE(x')                                        Madry et al.; RLFAT eq. 5
  at_reg        CE(x') + lam * mean_i ||G(x_i) - G(x'_i)||_2  FP&R eq. 7
  at_att        = pgd_at on an attention model                FP&R sec. 3.2
  at_att_reg    = at_reg on an attention model                FP&R eq. 7 + sec. 3.2
  alp           0.5 CE(x) + 0.5 CE(x') + lam * mean_i ||z(x_i) - z(x'_i)||_2^2
                                                              Kannan et al. (FP&R IJCAI Table 6)
  jt            l1 CE(x_clean part) + l2 CE(x'_adv part)      AELF eq. 4 / eq. 9, appendix C
  jt_star       jt + beta (mean ||f||_2 + mean ||f'||_2), from an ST model   AELF Table 3
  aelfs         jt_star with the head frozen                  AELF eq. 10, Algorithm 2
  aelf          CE(x) + lam * mean_i ||f(x'_i) - sg f(x_i)||_2, head on CE(x) only
                                                              AELF eq. 8, Algorithm 1
  trades        CE(x) + beta KL(p(x) || p(x'_KL))             Zhang et al.; RLFAT eq. 6
  rbsat_pgd     CE(RBS(x'))                                   RLFAT eq. 7
  rlfat_p       CE(RBS(x')) + eta mean_i ||z(RBS x'_i) - z(x'_i)||_2^2     RLFAT eq. 10
  rbsat_trades  CE(x) + beta KL(p(x) || p(RBS x'_KL))         RLFAT eq. 8
  rlfat_t       rbsat_trades + eta mean_i ||z(RBS x'_i) - z(x'_i)||_2^2    RLFAT eq. 10

Log keys (all detached 0-d tensors): ``loss``; ``ce`` (clean CE), ``ce_adv``
(CE on x'), ``ce_rbs`` (CE on RBS x'); ``reg_share`` (FP&R: lam * reg / CE(x'),
the regulariser's share of the loss); ``acc``, ``acc_adv``, ``acc_rbs`` (batch
accuracies of the logits the loss computed anyway -- no extra forward pass,
which in train mode would move BatchNorm statistics); ``reg`` (FP&R / AELF
feature distance, ALP logit distance), ``kl``, ``transfer`` (RLFAT logit
term), ``fnorm`` / ``fnorm_adv`` (AELF feature norms).

Readings where the papers are ambiguous (each loss' docstring repeats its own):

1. Batch reductions: every per-example term is averaged over the batch;
   squared logit distances (ALP, RLFAT) are summed over classes; feature
   distances/norms (FP&R, AELF) are per-example Euclidean norms, *not*
   squared.  KL is summed over classes and averaged over the batch
   ("batchmean", as the official TRADES code).
2. Forward passes: methods whose paper describes two copies of the network
   (FP&R Figure 1, TRADES, RLFAT, ALP, AELF) forward clean and adversarial
   inputs in *separate* calls, so BatchNorm normalises each with its own batch
   statistics.  The joint-training family (jt, jt_star, aelfs) forwards the
   *combined* batch (clean part + adversarial part) in *one* call, reading
   AELF appendix C's "the second half inputs (64) are used to generate
   adversarial data and combined with rest of natural data".
3. Gradients flow through both arguments of the KL term and of the logit
   transfer term (TRADES / RLFAT objectives as written); only AELF's feature
   target is stopped (``f.detach()``, Algorithm 1: "f is treated as
   constant").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError

__all__ = [
    "Method",
    "Requirement",
    "METHODS",
    "get",
    "names",
    "requirements",
    "check_config",
    "trainable_parameters",
    "split_sizes",
    "pgd",
    "rbs",
]

Logs = Dict[str, torch.Tensor]
LossFn = Callable[..., Tuple[torch.Tensor, Logs]]


# --------------------------------------------------------------------------
# indirections to the attack and the transform: imported lazily (no import
# cycle with config -> methods), and module-level names so tests can
# monkeypatch ``robustbook.methods.pgd`` / ``robustbook.methods.rbs``.


def pgd(model, x, y, **kw):
    """``robustbook.attacks.pgd`` (see there); indirection for lazy import and tests."""
    from .attacks import pgd as _pgd

    return _pgd(model, x, y, **kw)


def rbs(x, **kw):
    """``robustbook.transforms.rbs`` (Random Block Shuffle, RLFAT sec. 3.1)."""
    from .transforms import rbs as _rbs

    return _rbs(x, **kw)


# --------------------------------------------------------------------------
# small helpers


def _attack(model, x, y, cfg, loss: str, generator) -> torch.Tensor:
    """The training attack of ``cfg`` (eps, alpha, steps, random_start, attack_bn_train)."""
    return pgd(
        model,
        x,
        y,
        eps=cfg.eps,
        alpha=cfg.alpha,
        steps=cfg.steps,
        random_start=cfg.random_start,
        loss=loss,
        bn_train=cfg.attack_bn_train,
        generator=generator,
    )


def _shuffle(x, cfg, generator) -> torch.Tensor:
    return rbs(x, k=cfg.rbs_k, mode=cfg.rbs_mode, generator=generator)


def _ce(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross entropy (0 for an empty part, so a split never yields NaN)."""
    if z.shape[0] == 0:
        return z.float().sum() * 0.0
    return F.cross_entropy(z.float(), y)


def _acc(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    z = z.detach()
    if z.shape[0] == 0:
        return z.new_zeros((), dtype=torch.float32)
    return (z.argmax(1) == y).float().mean()


def _norm(v: torch.Tensor) -> torch.Tensor:
    """Batch mean of per-example Euclidean norms (0 for an empty batch).

    The gradient of ||v|| at v = 0 is taken as 0 (sub-gradient), so identical
    clean and adversarial features (eps = 0, a dead ReLU layer) give no NaN.
    """
    if v.shape[0] == 0:
        return v.float().sum() * 0.0
    v = v.float().flatten(1)
    sq = v.pow(2).sum(1)
    safe = torch.where(sq > 0, sq, torch.ones_like(sq))
    return torch.where(sq > 0, safe.sqrt(), torch.zeros_like(sq)).mean()


def _sq_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Batch mean of per-example squared Euclidean distances (sum over classes)."""
    return (a.float() - b.float()).flatten(1).pow(2).sum(1).mean()


def _kl(z_p: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
    """KL(softmax(z_p) || softmax(z_q)), summed over classes, mean over the batch.

    Gradient flows through both arguments (TRADES objective as written)."""
    logp = F.log_softmax(z_p.float(), dim=1)
    logq = F.log_softmax(z_q.float(), dim=1)
    return (logp.exp() * (logp - logq)).sum(1).mean()


def _d(**kw: torch.Tensor) -> Logs:
    return {k: v.detach() for k, v in kw.items()}


def split_sizes(batch: int, adv_fraction: float) -> Tuple[int, int]:
    """(n_clean, n_adv) of the joint-training split: the LAST
    ``round(batch * adv_fraction)`` examples (halves rounded up) are made adversarial
    (AELF appendix C: "the second half inputs (64) are used to generate
    adversarial data and combined with rest of natural data")."""
    n_adv = int(math.floor(batch * adv_fraction + 0.5))
    n_adv = min(max(n_adv, 0), batch)
    return batch - n_adv, n_adv


def _require_attention(model, name: str) -> None:
    if not getattr(model, "has_attention", False):
        raise ValueError(
            f"method {name!r} needs an attention model (model.has_attention is False): "
            "build madry_resnet with attention='nonlinear' or 'linear' (FP&R sec. 3.2), "
            "or use the method without attention (pgd_at / at_reg)"
        )


# --------------------------------------------------------------------------
# the losses


def st_loss(model, x, y, cfg, *, generator=None):
    """Standard training: ``CE(f(x), y)`` (AELF eq. 1). No attack."""
    z = model(x)
    loss = _ce(z, y)
    return loss, _d(loss=loss, ce=loss, acc=_acc(z, y))


def pgd_at_loss(model, x, y, cfg, *, generator=None):
    """Madry et al. PGD adversarial training: ``CE(f(x'), y)`` with ``x'`` =
    PGD on the cross entropy (FP&R eq. 1; RLFAT eq. 5; AELF eq. 3)."""
    x_adv = _attack(model, x, y, cfg, "ce", generator)
    z_adv = model(x_adv)
    loss = _ce(z_adv, y)
    return loss, _d(loss=loss, ce_adv=loss, acc_adv=_acc(z_adv, y))


def at_reg_loss(model, x, y, cfg, *, generator=None):
    """FP&R eq. 7 (AT-reg): ``CE(f(x'), y) + lam * mean_i ||G(x_i) - G(x'_i)||_2``.

    ``G`` = ``model.features`` (the layer before the last FC; the attention
    descriptor on attention models), ``x'`` = PGD on CE.  The regulariser of
    eq. 6 is the plain Euclidean distance per example (not squared), averaged
    over the batch; it is bidirectional (gradient through both G(x) and G(x')).
    Clean and adversarial images are forwarded separately (FP&R Figure 1: two
    copies sharing all parameters).  No clean CE term.
    """
    x_adv = _attack(model, x, y, cfg, "ce", generator)
    f = model.features(x)
    f_adv = model.features(x_adv)
    z_adv = model.head(f_adv)
    ce_adv = _ce(z_adv, y)
    reg = _norm(f - f_adv)
    loss = ce_adv + cfg.lam * reg
    with torch.no_grad():
        z = model.head(f.detach())
    # how strong the term really is: the two FP&R texts give the same numbers with lambda ten
    # times apart (0.1 vs 1 for AT-reg), so metrics.jsonl logs lam * reg / CE per epoch
    reg_share = cfg.lam * reg / ce_adv.clamp_min(1e-12)
    return loss, _d(loss=loss, ce_adv=ce_adv, reg=reg, reg_share=reg_share, acc=_acc(z, y), acc_adv=_acc(z_adv, y))


def at_att_loss(model, x, y, cfg, *, generator=None):
    """FP&R AT-att: ``pgd_at`` on an attention model (sec. 3.2, eq. 1); the
    attention module is the model's, so the loss is Madry's ``CE(f(x'), y)``."""
    _require_attention(model, "at_att")
    return pgd_at_loss(model, x, y, cfg, generator=generator)


def at_att_reg_loss(model, x, y, cfg, *, generator=None):
    """FP&R AT-att-reg: eq. 7 (``at_reg``) on an attention model, ``G(x)`` =
    the attention-weighted global descriptor (sec. 3.3)."""
    _require_attention(model, "at_att_reg")
    return at_reg_loss(model, x, y, cfg, generator=generator)


def alp_loss(model, x, y, cfg, *, generator=None):
    """Adversarial Logit Pairing (Kannan et al. 2018; FP&R IJCAI Table 6):
    ``0.5 CE(z(x), y) + 0.5 CE(z(x'), y) + lam * mean_i ||z(x_i) - z(x'_i)||_2^2``.

    Normalisation: Kannan et al.'s ``J(mixed minibatch) + lam (1/m) sum_i
    L(z(x_i), z(x'_i))`` with the whole batch clean and its whole adversarial
    copy (a 50/50 mix: both CE means weighted 0.5) and ``L`` the squared L2
    distance of the logit vectors, summed over classes and averaged over the
    m pairs.  (A mean over classes instead, as an element-wise MSE would do,
    corresponds to ``lam / num_classes`` here.)  ``x'`` = PGD on CE; separate
    forwards for x and x' (as at_reg, its comparison in FP&R Table 6).
    """
    x_adv = _attack(model, x, y, cfg, "ce", generator)
    z = model(x)
    z_adv = model(x_adv)
    ce = _ce(z, y)
    ce_adv = _ce(z_adv, y)
    reg = _sq_dist(z, z_adv)
    loss = 0.5 * (ce + ce_adv) + cfg.lam * reg
    return loss, _d(loss=loss, ce=ce, ce_adv=ce_adv, reg=reg, acc=_acc(z, y), acc_adv=_acc(z_adv, y))


def _joint(model, x, y, cfg, generator, *, feature_norm: bool):
    """Shared body of jt / jt_star / aelfs (AELF eq. 4, 9, 10; appendix C).

    The last ``adv_fraction`` of the batch (see :func:`split_sizes`) is
    replaced by its PGD-CE adversary; the clean part and the adversarial part
    are concatenated and forwarded in ONE call (appendix C: "combined with rest
    of natural data"), so BatchNorm sees one mixed batch.
    ``loss = l1 * CE(clean part) + l2 * CE(adversarial part)`` (each a mean
    over its own part), ``(l1, l2) = cfg.ratio``; with ``feature_norm``
    ``+ beta * (mean_i ||f_i||_2 + mean_j ||f'_j||_2)`` over the clean part i
    and the adversarial part j (per-example Euclidean norms, not squared).
    """
    n_clean, n_adv = split_sizes(x.shape[0], cfg.adv_fraction)
    x_clean, y_clean = x[:n_clean], y[:n_clean]
    x_src, y_adv = x[n_clean:], y[n_clean:]
    if n_adv > 0:
        x_adv = _attack(model, x_src, y_adv, cfg, "ce", generator)
    else:
        x_adv = x_src
    f = model.features(torch.cat([x_clean, x_adv], 0))
    z = model.head(f)
    l1, l2 = cfg.ratio
    ce = _ce(z[:n_clean], y_clean)
    ce_adv = _ce(z[n_clean:], y_adv)
    loss = l1 * ce + l2 * ce_adv
    logs = dict(ce=ce, ce_adv=ce_adv, acc=_acc(z[:n_clean], y_clean), acc_adv=_acc(z[n_clean:], y_adv))
    if feature_norm:
        fnorm = _norm(f[:n_clean])
        fnorm_adv = _norm(f[n_clean:])
        loss = loss + cfg.beta * (fnorm + fnorm_adv)
        logs.update(fnorm=fnorm, fnorm_adv=fnorm_adv)
    logs["loss"] = loss
    return loss, _d(**logs)


def jt_loss(model, x, y, cfg, *, generator=None):
    """Joint training (Kurakin et al.; AELF eq. 4 written with lambda1:lambda2
    as in eq. 10 and Table 3): ``l1 CE(x_clean part) + l2 CE(x'_adv part)``.

    Appendix C: of each batch the second half (the last ``adv_fraction``) is
    made adversarial and combined with the natural first half; one forward of
    the combined batch.  ``(l1, l2) = cfg.ratio``."""
    return _joint(model, x, y, cfg, generator, feature_norm=False)


def jt_star_loss(model, x, y, cfg, *, generator=None):
    """JT* (AELF Table 3, "JT with our two actions"): ``jt`` plus AELF eq. 10's
    feature-norm term ``beta (mean ||f||_2 + mean ||f'||_2)`` (f = features of
    the clean part, f' of the adversarial part), trained from a
    standard-trained initialisation (``init_from_st``).  The head is trained
    (the only difference to ``aelfs``)."""
    return _joint(model, x, y, cfg, generator, feature_norm=True)


def aelfs_loss(model, x, y, cfg, *, generator=None):
    """AELFs (AELF eq. 10, Algorithm 2):
    ``l1 CE(c; x) + l2 CE(c; x') + beta (||f||_2 + ||f'||_2)`` with the head
    ``w`` fixed at its standard-training value.

    Reading: AELFs is "JT to update c" (sec. 3.2), and appendix C says "for
    different JT ways, the second half inputs (64) are used to generate
    adversarial data", and Table 3 ablates JT* vs AELFs as differing only by
    the fixed w; so ``x`` is the clean first part and ``x'`` the adversary of
    the second part, exactly as ``jt_star`` (one combined forward; norms are
    per-example Euclidean norms averaged over each part).  The loss freezes
    nothing: the training loop optimizes :func:`trainable_parameters`, which
    leaves out ``model.head``.
    """
    return _joint(model, x, y, cfg, generator, feature_norm=True)


def aelf_loss(model, x, y, cfg, *, generator=None):
    """AELF (eq. 8, Algorithm 1): the head ``w`` is trained on ``CE(x)`` only,
    the feature extractor ``c`` on ``CE(x) + lam * L2(f', sg f)``.

    ``L2(f', f) = mean_i ||f(x'_i) - f(x_i)||_2`` (per-example Euclidean
    distance, not squared; the paper's "||f_x - f_x'||_2"), with the clean
    features a constant target ("f is treated as constant vector", so the
    fitting is unidirectional f' -> f).  ``x'`` = PGD-CE on the whole batch
    (Algorithm 1 line 3).

    Simultaneous-update reading of the alternation: one loss whose gradient
    routes as Algorithm 1 lines 6 and 9 -- the head's CE term sees
    ``features.detach()``; the extractor's CE term goes through the head with
    detached weights (``F.linear(f, W.detach(), b.detach())``).  One optimizer
    step on this loss equals line 6 then line 9 (line 9's gradient is computed
    from the same forward, with the pre-update w).  The reported value is
    ``CE(x) + lam * L2`` (the head copy enters as ``ce_w - ce_w.detach()``,
    which is 0 in value).  Mathematically the gradient equals that of
    ``CE(x) + lam * L2(f', sg f)``; the explicit routing keeps it so if terms
    are ever added.
    """
    x_adv = _attack(model, x, y, cfg, "ce", generator)
    f = model.features(x)
    head = model.head
    bias = head.bias.detach() if head.bias is not None else None
    z_c = F.linear(f, head.weight.detach(), bias)  # extractor path (line 9)
    z_w = head(f.detach())  # head path (line 6)
    ce_c = _ce(z_c, y)
    ce_w = _ce(z_w, y)
    f_adv = model.features(x_adv)
    reg = _norm(f_adv - f.detach())
    loss = ce_c + (ce_w - ce_w.detach()) + cfg.lam * reg
    with torch.no_grad():
        z_adv = head(f_adv.detach())
    return loss, _d(loss=loss, ce=ce_c, reg=reg, acc=_acc(z_c, y), acc_adv=_acc(z_adv, y))


def trades_loss(model, x, y, cfg, *, generator=None):
    """TRADES (Zhang et al. 2019; RLFAT eq. 6; AELF eq. 5):
    ``CE(z(x), y) + beta * KL(p(x) || p(x'))`` with ``x'`` from the KL attack
    (``loss='kl'``: PGD on KL to the clean prediction, started at
    x + 0.001 N(0,1)).  KL summed over classes, mean over the batch (the
    official code's ``KLDivLoss(sum) / batch_size``); gradient through both
    p(x) and p(x'); separate forwards for x and x'."""
    x_adv = _attack(model, x, y, cfg, "kl", generator)
    z = model(x)
    z_adv = model(x_adv)
    ce = _ce(z, y)
    kl = _kl(z, z_adv)
    loss = ce + cfg.beta * kl
    return loss, _d(loss=loss, ce=ce, kl=kl, acc=_acc(z, y), acc_adv=_acc(z_adv, y))


def rbsat_pgd_loss(model, x, y, cfg, *, generator=None):
    """RBSAT on PGDAT (RLFAT eq. 7): ``CE(z(RBS(x')), y)``; ``x'`` = PGD-CE on the
    *unshuffled* x, RBS applied afterwards (official code, INDEX.md)."""
    x_adv = _attack(model, x, y, cfg, "ce", generator)
    z_rbs = model(_shuffle(x_adv, cfg, generator))
    loss = _ce(z_rbs, y)
    return loss, _d(loss=loss, ce_rbs=loss, acc_rbs=_acc(z_rbs, y))


def rlfat_p_loss(model, x, y, cfg, *, generator=None):
    """RLFAT_P (RLFAT eq. 10 = eq. 7 + eta * eq. 9):
    ``CE(z(RBS x'), y) + eta * mean_i sum_c (z_c(RBS x'_i) - z_c(x'_i))^2``.

    Official code (INDEX.md): no clean CE term, eta = 0.5, logit term summed
    over classes and averaged over the batch; gradient through both logits.
    x' and RBS(x') are forwarded in two separate calls (BatchNorm normalises
    each with its own statistics; a single concatenated forward would mix
    them)."""
    x_adv = _attack(model, x, y, cfg, "ce", generator)
    z_rbs = model(_shuffle(x_adv, cfg, generator))
    z_adv = model(x_adv)
    ce_rbs = _ce(z_rbs, y)
    transfer = _sq_dist(z_rbs, z_adv)
    loss = ce_rbs + cfg.eta * transfer
    return loss, _d(loss=loss, ce_rbs=ce_rbs, transfer=transfer, acc_rbs=_acc(z_rbs, y), acc_adv=_acc(z_adv, y))


def rbsat_trades_loss(model, x, y, cfg, *, generator=None):
    """RBSAT on TRADES (RLFAT eq. 8): ``CE(z(x), y) + beta * KL(p(x) || p(RBS x'))``
    with ``x'`` from the TRADES KL attack on the unshuffled x."""
    x_adv = _attack(model, x, y, cfg, "kl", generator)
    z = model(x)
    z_rbs = model(_shuffle(x_adv, cfg, generator))
    ce = _ce(z, y)
    kl = _kl(z, z_rbs)
    loss = ce + cfg.beta * kl
    return loss, _d(loss=loss, ce=ce, kl=kl, acc=_acc(z, y), acc_rbs=_acc(z_rbs, y))


def rlfat_t_loss(model, x, y, cfg, *, generator=None):
    """RLFAT_T (RLFAT eq. 10 = eq. 8 + eta * eq. 9; official code, INDEX.md):
    ``CE(z(x), y) + beta * KL(p(x) || p(RBS x')) + eta * mean_i sum_c
    (z_c(RBS x'_i) - z_c(x'_i))^2``, x' from the TRADES KL attack
    (beta = 6, eta = 1 in the presets).  Three separate forwards (x, RBS x', x')."""
    x_adv = _attack(model, x, y, cfg, "kl", generator)
    z = model(x)
    z_rbs = model(_shuffle(x_adv, cfg, generator))
    z_adv = model(x_adv)
    ce = _ce(z, y)
    kl = _kl(z, z_rbs)
    transfer = _sq_dist(z_rbs, z_adv)
    loss = ce + cfg.beta * kl + cfg.eta * transfer
    return loss, _d(
        loss=loss, ce=ce, kl=kl, transfer=transfer,
        acc=_acc(z, y), acc_rbs=_acc(z_rbs, y), acc_adv=_acc(z_adv, y),
    )


# --------------------------------------------------------------------------
# registry


@dataclass(frozen=True)
class Requirement:
    """A condition a RunConfig must meet for a method: ``ok(cfg)`` is True, or
    ``check_config`` raises ConfigError naming ``field`` and saying ``fix``."""

    field: str
    ok: Callable[[Any], bool]
    fix: str


def _positive(name: str, fix: str) -> Requirement:
    return Requirement(name, lambda cfg, _n=name: getattr(cfg, _n) > 0, fix)


@dataclass(frozen=True)
class Method:
    """One training method: its loss and what it needs from the run."""

    name: str
    loss: LossFn
    paper: str
    adversarial: bool = True
    """Crafts a training attack (needs eps > 0 and steps >= 1)."""
    needs_attention: bool = False
    """Only meaningful on an attention model (FP&R at_att, at_att_reg)."""
    freeze_head: bool = False
    """The head keeps its standard-training weights (AELFs): left out by `trainable_parameters`."""
    init_from_st: bool = False
    """Starts from a standard-trained model of `pretrain_epochs` epochs (AELFs, JT*)."""
    requires: Tuple[Requirement, ...] = ()
    """Method-specific requirements on the config (beyond the flags above)."""
    formula: str = ""
    """One-line formula, for tables in the book."""

    def __call__(self, model, x, y, cfg, **kw):
        return self.loss(model, x, y, cfg, **kw)


_LAM_ZERO_IS = "lam=0 makes {m} identical to {same}: use method={same!r}, or set lam > 0 ({hint})"

_AT_REG_LAM = _positive(
    "lam", _LAM_ZERO_IS.format(m="at_reg", same="pgd_at", hint="FP&R: 0.01 MNIST, 0.1 CIFAR-10 conference / 1 IJCAI")
)
_AT_ATT_REG_LAM = _positive(
    "lam", _LAM_ZERO_IS.format(m="at_att_reg", same="at_att", hint="FP&R: 0.01 CIFAR-10 conference / 0.1 IJCAI")
)
_ALP_LAM = _positive("lam", "alp needs lam > 0, the logit-pairing weight (lam=0 is plain 50/50 mixed adversarial training)")
_AELF_LAM = _positive(
    "lam", "aelf needs lam > 0, the weight of the feature-fitting loss L2(f', f) of Algorithm 1 (lam=0 trains on CE(x) only)"
)
_TRADES_BETA = _positive("beta", "the TRADES family needs beta > 0, the KL weight (TRADES uses 1-6, RLFAT_T 6); beta=0 trains on CE(x) only")
_RLFAT_ETA = _positive("eta", "RLFAT needs eta > 0, the weight of the logit transfer term of eq. 9 (0.5 RLFAT_P, 1 RLFAT_T); "
                       "with eta=0 use rbsat_pgd / rbsat_trades")
_KL_START = Requirement(
    "random_start",
    lambda cfg: bool(cfg.random_start),
    "the TRADES KL attack starts at x + 0.001 N(0,1) (random_start=True); without that start the KL "
    "gradient at x is zero and x' = x: set random_start=True",
)
_SPLIT = Requirement(
    "adv_fraction",
    lambda cfg: 0 < cfg.adv_fraction < 1,
    "joint training needs 0 < adv_fraction < 1, the fraction of the batch made adversarial (AELF appendix C: 0.5)",
)

METHODS: Dict[str, Method] = {
    m.name: m
    for m in (
        Method("st", st_loss, "AELF eq. 1 (standard training)", adversarial=False, formula="CE(x)"),
        Method("pgd_at", pgd_at_loss, "Madry et al. 2018; FP&R eq. 1; RLFAT eq. 5", formula="CE(x')"),
        Method("at_reg", at_reg_loss, "FP&R eq. 7", requires=(_AT_REG_LAM,),
               formula="CE(x') + lam mean||G(x)-G(x')||_2"),
        Method("at_att", at_att_loss, "FP&R eq. 1 + attention (sec. 3.2)", needs_attention=True,
               formula="CE(x'), attention model"),
        Method("at_att_reg", at_att_reg_loss, "FP&R eq. 7 + attention (sec. 3.2)", needs_attention=True,
               requires=(_AT_ATT_REG_LAM,), formula="CE(x') + lam mean||G(x)-G(x')||_2, attention model"),
        Method("alp", alp_loss, "Kannan et al. 2018 (ALP); FP&R IJCAI Table 6", requires=(_ALP_LAM,),
               formula="0.5 CE(x) + 0.5 CE(x') + lam mean||z(x)-z(x')||_2^2"),
        Method("jt", jt_loss, "AELF eq. 4 / eq. 9, appendix C (Kurakin et al. joint training)", requires=(_SPLIT,),
               formula="l1 CE(x[:half]) + l2 CE(x'[half:])"),
        Method("trades", trades_loss, "Zhang et al. 2019; RLFAT eq. 6", requires=(_TRADES_BETA, _KL_START),
               formula="CE(x) + beta KL(p(x)||p(x'_KL))"),
        Method("jt_star", jt_star_loss, "AELF Table 3 (JT*)", init_from_st=True, requires=(_SPLIT,),
               formula="l1 CE(x[:half]) + l2 CE(x'[half:]) + beta (||f|| + ||f'||), from ST"),
        Method("aelfs", aelfs_loss, "AELF eq. 10, Algorithm 2", freeze_head=True, init_from_st=True,
               requires=(_SPLIT,),
               formula="l1 CE(x[:half]) + l2 CE(x'[half:]) + beta (||f|| + ||f'||), from ST, head frozen"),
        Method("aelf", aelf_loss, "AELF eq. 8, Algorithm 1", requires=(_AELF_LAM,),
               formula="head: CE(x); extractor: CE(x) + lam mean||f(x')-sg f(x)||_2"),
        Method("rbsat_pgd", rbsat_pgd_loss, "RLFAT eq. 7", formula="CE(RBS(x'))"),
        Method("rlfat_p", rlfat_p_loss, "RLFAT eq. 10 (RLFAT_P)", requires=(_RLFAT_ETA,),
               formula="CE(RBS x') + eta mean||z(RBS x')-z(x')||_2^2"),
        Method("rbsat_trades", rbsat_trades_loss, "RLFAT eq. 8", requires=(_TRADES_BETA, _KL_START),
               formula="CE(x) + beta KL(p(x)||p(RBS x'_KL))"),
        Method("rlfat_t", rlfat_t_loss, "RLFAT eq. 10 (RLFAT_T)", requires=(_TRADES_BETA, _RLFAT_ETA, _KL_START),
               formula="CE(x) + beta KL(p(x)||p(RBS x'_KL)) + eta mean||z(RBS x')-z(x')||_2^2"),
    )
}


def names() -> list:
    """Method names in registry order."""
    return list(METHODS)


def get(name: Union[str, Method]) -> Method:
    """The :class:`Method` called ``name`` (a Method is returned as is)."""
    if isinstance(name, Method):
        return name
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)}") from None


def _attention_kw(cfg) -> Any:
    """The attention kind of the configured model, or None (no attention, or a
    model family that has no ``attention`` keyword)."""
    from .models import kwargs_of

    kw = cfg.model_kw if isinstance(cfg.model_kw, Mapping) else {}
    att = kw.get("attention")
    if att in (None, False, "", "none", "None"):
        return None
    try:
        return att if "attention" in kwargs_of(cfg.model) else None
    except ValueError:  # unknown model: reported by check_config itself
        return None


def requirements(method: Union[str, Method]) -> Tuple[Requirement, ...]:
    """Everything ``method`` needs from a config: the generic rules implied by
    its flags (adversarial, needs_attention, init_from_st) then its own
    ``requires``."""
    m = get(method)
    out = []
    if m.needs_attention:
        out.append(Requirement(
            "model_kw",
            lambda cfg: _attention_kw(cfg) is not None,
            f"method {m.name!r} needs an attention model: use model='madry_resnet' with "
            "model_kw={'attention': 'nonlinear'} (or 'linear') (FP&R sec. 3.2), or the method without "
            f"attention ({'pgd_at' if m.name == 'at_att' else 'at_reg'})",
        ))
    if m.adversarial:
        out.append(_positive(
            "eps", f"{m.name!r} is adversarial and needs eps > 0 (the training attack's l-inf radius); "
                   "eps=0 means no attack: use method='st'"))
        out.append(_positive(
            "steps", f"{m.name!r} is adversarial and needs steps >= 1 PGD steps for its training attack; "
                     "steps=0 means no attack: use method='st' or set steps"))
    if m.init_from_st:
        out.append(_positive(
            "pretrain_epochs", f"{m.name!r} needs pretrain_epochs > 0: the length of the standard-training run "
                               "it starts from (AELF appendix C: 100 epochs CIFAR, 50 MNIST)"))
    out.extend(m.requires)
    return tuple(out)


def check_config(cfg) -> None:
    """Method-specific validation of a RunConfig (called by ``RunConfig``).

    Raises :class:`robustbook.config.ConfigError` naming the field and the fix.
    """
    if cfg.method not in METHODS:
        raise ConfigError(
            f"RunConfig.method={cfg.method!r} is invalid: unknown method; valid methods: {', '.join(METHODS)}"
        )
    from .models import MODELS  # lazy: models are heavy and not needed to import config

    if cfg.model not in MODELS:
        raise ConfigError(
            f"RunConfig.model={cfg.model!r} is invalid: unknown model; valid models: {', '.join(sorted(MODELS))}"
        )
    m = METHODS[cfg.method]
    for req in requirements(m):
        if not req.ok(cfg):
            value = getattr(cfg, req.field)
            if isinstance(value, Mapping):
                value = dict(value)
            raise ConfigError(
                f"RunConfig.{req.field}={value!r} is invalid for method={m.name!r}: {req.fix}"
            )


def trainable_parameters(model: nn.Module, method: Union[str, Method]) -> list:
    """The parameters the training loop optimizes for ``method``.

    For ``freeze_head`` methods (AELFs: "w is not updated", Algorithm 2) the
    head's parameters are left out and set to ``requires_grad=False`` (so no
    gradient is even computed for them, and neither the step nor weight decay
    nor momentum can touch them); all other methods optimize every parameter.
    """
    m = get(method)
    if not m.freeze_head:
        return list(model.parameters())
    head_ids = {id(p) for p in model.head.parameters()}
    for p in model.head.parameters():
        p.requires_grad_(False)
    return [p for p in model.parameters() if id(p) not in head_ids]
