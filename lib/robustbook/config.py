"""The one typed configuration of a training run (cleanrl style: a field, a docstring).

`RunConfig` is frozen; every invalid value fails at construction with a message
naming the field and the allowed range. A run's id is a short hash of the
canonical config plus the library version (`run_id`), so changing any field
(or the library version) names a new run, and a finished run is loaded, not
re-run (`robustbook.runs.train`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Tuple

from . import __version__
from .errors import ConfigError  # noqa: F401  (re-exported: robustbook.config.ConfigError)

DATASETS = ("mnist", "fashion_mnist", "cifar10", "cifar100", "stl10")
AUGMENTS = ("none", "flip", "crop_flip")
OPTIMIZERS = ("sgd", "adam")
DECAY_PARAMS = ("all", "weights")
LR_SCHEDULES = ("step", "onecycle")
PRECISIONS = ("fp32", "bf16", "amp")
PROFILES = ("smoke", "cpu", "paper", "custom")
DEVICES = ("auto", "cpu", "cuda")
RBS_MODES = ("official", "paper")


class FrozenKw(dict):
    """The immutable dict of `RunConfig.model_kw`: JSON-serialisable like a dict, hashable,
    picklable; lists inside are stored as tuples. Any change raises TypeError."""

    def _readonly(self, *args, **kwargs):
        raise TypeError("RunConfig.model_kw cannot be changed after the config is made (the run id is "
                        "its hash); make a new config: cfg.replace(model_kw={**cfg.model_kw, 'key': value})")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _readonly

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.items())))

    def __reduce__(self):
        return (type(self), (dict(self),))


def _freeze(v: Any) -> Any:
    if isinstance(v, Mapping):
        return FrozenKw(sorted((k, _freeze(x)) for k, x in v.items()))
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    return v


def _thaw(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {k: _thaw(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_thaw(x) for x in v]
    return v


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a training run. Defaults: FP&R CIFAR-10 `pgd_at`
    on the narrow Madry ResNet (FP&R section 4.2), reduced to a short CPU run."""

    # ---- data -------------------------------------------------------------
    dataset: str = "cifar10"
    """Dataset name, one of `DATASETS` (loaded by `robustbook.data.load`)."""
    train_size: Optional[int] = None
    """Class-balanced subset of the training split (None = every image available)."""
    test_size: Optional[int] = None
    """Class-balanced subset of the test split used for the per-epoch probe and evaluation (None = all)."""
    input_size: Optional[int] = None
    """Resize images to this side length (AELF pads MNIST to 32x32 for CNN_B); None = native size."""
    augment: str = "crop_flip"
    """Training augmentation on tensors: 'none', 'flip', or 'crop_flip' (random crop with padding + horizontal flip)."""
    crop_padding: int = 4
    """Zero padding of the random crop (4 in Madry's CIFAR code; AELF appendix C uses 2)."""

    # ---- model ------------------------------------------------------------
    model: str = "madry_resnet"
    """Registered model name (`robustbook.models.build`)."""
    model_kw: Mapping[str, Any] = field(default_factory=lambda: {"filters": "narrow"})
    """Keyword arguments of the model (e.g. {'filters': 'narrow', 'attention': 'nonlinear'})."""

    # ---- method -----------------------------------------------------------
    method: str = "pgd_at"
    """Training method (`robustbook.methods.METHODS`): st, pgd_at, at_reg, at_att, at_att_reg, alp, jt,
    trades, jt_star, aelfs, aelf, rbsat_pgd, rlfat_p, rbsat_trades, rlfat_t."""
    lam: float = 0.0
    """Weight of the method's regulariser: FP&R lambda of eq. 7 (at_reg), ALP's logit-pairing weight,
    AELF's lambda of Algorithm 1. Must be >= 0."""
    beta: float = 0.0
    """TRADES beta (KL weight, RLFAT's lambda = 6 in RLFAT_T), or AELF's feature-norm weight beta (eq. 10). >= 0."""
    eta: float = 0.0
    """RLFAT eta of eq. 10: weight of the logit transfer term ||z(RBS x') - z(x')||^2 (0.5 for P, 1 for T)."""
    ratio: Tuple[float, float] = (0.5, 0.5)
    """AELF lambda1:lambda2, the weights of the clean and adversarial CE terms (JT, AELFs); must sum to 1."""
    adv_fraction: float = 0.5
    """Fraction of each batch made adversarial in joint training (AELF appendix C: the second half)."""
    rbs_k: int = 2
    """RLFAT Random Block Shuffle: number of blocks per axis for the paper's k-block split."""
    rbs_mode: str = "official"
    """'official' = one random cut per axis (JHL-HUST/RLFAT code), 'paper' = k equal blocks shuffled (RLFAT 3.1)."""
    pretrain_epochs: int = 0
    """Epochs of the standard-training run AELFs / JT* start from (0 for methods that start from scratch)."""
    pretrain_milestones: Tuple[int, ...] = ()
    """LR milestones (epochs) of that standard-training run."""

    # ---- training attack --------------------------------------------------
    eps: float = 8 / 255
    """l-inf radius of the training attack, in [0,1] pixel units (8/255 FP&R CIFAR, 0.3 MNIST, 0.03 RLFAT)."""
    alpha: float = 2 / 255
    """PGD step size of the training attack (pixel units)."""
    steps: int = 5
    """PGD steps of the training attack (5 FP&R CIFAR, 40 MNIST, 10 RLFAT CIFAR-10)."""
    random_start: bool = True
    """Start PGD from a uniform random point in the eps-ball (AELF appendix C: no initial noise)."""
    attack_bn_train: bool = False
    """BatchNorm mode while crafting the *training* attack. False (AELF appendix C: eval mode): the
    attack sees the running statistics and changes nothing. True (Madry's cifar10_challenge, which
    FP&R builds on, and the official RLFAT scripts: the TF model is built with is_training=True and
    `batch_norm(..., updates_collections=None)`): in PyTorch every BatchNorm layer normalises with
    the attack batch's own statistics, and *every* forward pass of the attack (one per PGD step)
    also updates the running mean/variance with the layer's momentum (0.1 for Madry's ResNet =
    TF decay 0.9), in addition to the training forward on x'. Evaluation attacks always use eval mode."""
    eps_warmup_epochs: float = 0.0
    """Ramp the training attack's eps (and alpha with it) linearly from 0 to `eps` over this many epochs,
    per batch (0 = no ramp; the papers use none). A `cpu`-profile device to leave MNIST's early plateau."""

    # ---- optimisation -----------------------------------------------------
    optimizer: str = "sgd"
    """'sgd' (momentum, weight decay) or 'adam' (RLFAT official code: Adam 1e-3, no weight decay)."""
    lr: float = 0.1
    """Initial learning rate."""
    momentum: float = 0.9
    """SGD momentum."""
    weight_decay: float = 2e-4
    """L2 weight decay (2e-4 Madry CIFAR, 5e-4 AELF)."""
    weight_decay_params: str = "all"
    """Which parameters decay: 'all' (PyTorch's SGD/Adam `weight_decay`, as AELF appendix C states
    it) or 'weights' (conv and linear weights only, not BatchNorm parameters or biases: Madry's
    cifar10_challenge `_decay()` sums l2_loss over the 'DW' variables; FP&R builds on it)."""
    milestones: Tuple[int, ...] = ()
    """Epochs after which the learning rate is multiplied by `lr_gamma` (step schedule)."""
    lr_gamma: float = 0.1
    """Multiplicative LR decay at each milestone."""
    lr_schedule: str = "step"
    """'step' (`milestones` x `lr_gamma`, every paper) or 'onecycle': per batch, linear from 0 up to
    `lr` over the first 40% of training and back to 0 at the end (Wong et al. 2020's cyclic schedule;
    a `cpu`-profile device for MNIST, where `milestones` must be empty)."""
    epochs: int = 10
    """Training epochs (passes over the training subset)."""
    batch_size: int = 128
    """Mini-batch size (128 FP&R/AELF, 32 RLFAT)."""

    # ---- bookkeeping ------------------------------------------------------
    seed: int = 0
    """Seed of initialisation, batch order, augmentation and attack starts."""
    device: str = "auto"
    """'auto' (CUDA when present, else CPU), 'cpu' or 'cuda'. Not part of the run id."""
    precision: str = "fp32"
    """'fp32' (default, used for reported tables), 'bf16' autocast, or 'amp' (CUDA fp16)."""
    probe_size: int = 200
    """Test images used for the per-epoch clean/PGD probe written to metrics.jsonl."""
    profile: str = "custom"
    """Which profile the config belongs to: 'smoke', 'cpu', 'paper' or 'custom'."""

    def __post_init__(self) -> None:
        _validate(self)
        # normalise containers so equal configs hash equally
        object.__setattr__(self, "model_kw", _freeze(self.model_kw))
        object.__setattr__(self, "ratio", tuple(float(r) for r in self.ratio))
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        object.__setattr__(self, "pretrain_milestones", tuple(int(m) for m in self.pretrain_milestones))

    # ------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain JSON-able dict of every field."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["model_kw"] = _thaw(self.model_kw)
        d["ratio"] = list(self.ratio)
        d["milestones"] = list(self.milestones)
        d["pretrain_milestones"] = list(self.pretrain_milestones)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunConfig":
        """Inverse of `to_dict`; unknown keys are an error (they would silently change nothing)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown RunConfig field(s) {unknown}; valid fields: {sorted(names)}")
        kw = dict(d)
        for key in ("ratio", "milestones", "pretrain_milestones"):
            if key in kw:
                kw[key] = tuple(kw[key])
        return cls(**kw)

    def replace(self, **changes: Any) -> "RunConfig":
        """A copy with some fields changed (validated again)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ConfigError(f"unknown RunConfig field(s) {unknown}; valid fields: {sorted(names)}")
        return dataclasses.replace(self, **changes)

    @property
    def run_id(self) -> str:
        return run_id(self)


# fields that do not change what is computed, so they are not part of the id
_NOT_IN_ID = ("device", "profile")
# fields added after runs were recorded: left out of the id while at their default, so adding
# them did not rename the runs that never used them
_OMIT_AT_DEFAULT = {"lr_schedule": "step"}


def canonical(cfg: RunConfig) -> str:
    """Canonical JSON of the fields that determine the result, plus the library version and
    the fingerprint of the data it trains on (`data.fingerprint`: archive name + sha256, or
    the torchvision dataset), so the 4k/1k archive and the full CIFAR-10 never share an id."""
    from .data import fingerprint

    d = {k: v for k, v in cfg.to_dict().items()
         if k not in _NOT_IN_ID and not (k in _OMIT_AT_DEFAULT and v == _OMIT_AT_DEFAULT[k])}
    d["_version"] = __version__
    d["_data"] = fingerprint(cfg.dataset)
    return json.dumps(d, sort_keys=True, separators=(",", ":"))


def run_id(cfg: RunConfig) -> str:
    """Short hash naming the run: `<method>-<dataset>-<12 hex>`."""
    digest = hashlib.sha256(canonical(cfg).encode()).hexdigest()[:12]
    return f"{cfg.method}-{cfg.dataset}-{digest}"


def _fail(name: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"RunConfig.{name}={value!r} is invalid: {allowed}")


_NUMERIC = {"int": int, "float": float, "Optional[int]": int, "Optional[float]": float,
            "Tuple[float, float]": float, "Tuple[int, ...]": int, "Tuple[float, ...]": float}


def _check_numbers(cfg: RunConfig) -> None:
    """Every numeric field (by its annotation; tuples element-wise) holds a finite number of
    the right kind: a string, NaN or infinity is a ConfigError naming the field."""
    for f in dataclasses.fields(cfg):
        kind = _NUMERIC.get(str(f.type))
        v = getattr(cfg, f.name)
        if kind is None or (v is None and f.type.startswith("Optional")):
            continue
        tup = f.type.startswith("Tuple")
        if tup and (isinstance(v, (str, bytes)) or not isinstance(v, (list, tuple))):
            _fail(f.name, v, f"must be a list of {'integers' if kind is int else 'numbers'}")
        for x in (v if tup else (v,)):
            if isinstance(x, bool) or not isinstance(x, (int, float)):
                what = "an integer" if kind is int else "a number"
                example = f" such as {f.name}={f.default!r}" if isinstance(f.default, (int, float)) else ""
                _fail(f.name, v, f"must be {what}, not {type(x).__name__}: write a number{example}, without quotes")
            if kind is int and not isinstance(x, int):
                _fail(f.name, v, "must be an integer")
            if not math.isfinite(x):
                _fail(f.name, v, "must be a finite number (NaN and infinity are not allowed)")


def _check_model_kw(cfg: RunConfig) -> None:
    """`model_kw` names keywords the model accepts, with values it accepts (the registry's
    check; no model is built). An unknown model is reported by `check_config`."""
    from .models.registry import MODELS, check_kwargs  # lazy, like check_config

    kw = cfg.model_kw
    if not isinstance(kw, Mapping) or not all(isinstance(k, str) for k in kw):
        _fail("model_kw", kw, "must be a dict of model keyword arguments with string keys")
    if cfg.model not in MODELS:
        return
    try:
        check_kwargs(cfg.model, _thaw(kw))
    except (ValueError, TypeError) as err:
        _fail("model_kw", _thaw(kw), f"{err} (model={cfg.model!r})")


def _validate(cfg: RunConfig) -> None:
    _check_numbers(cfg)  # first: the range checks below compare numbers

    def choice(name, options):
        v = getattr(cfg, name)
        if v not in options:
            _fail(name, v, f"must be one of {list(options)}")

    def num(name, lo=None, hi=None, integer=False, lo_open=False):
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
            _fail(name, v, f"must be {'an integer' if integer else 'a number'}")
        if lo is not None and (v <= lo if lo_open else v < lo):
            _fail(name, v, f"must be {'>' if lo_open else '>='} {lo}")
        if hi is not None and v > hi:
            _fail(name, v, f"must be <= {hi}")

    choice("dataset", DATASETS)
    choice("augment", AUGMENTS)
    choice("optimizer", OPTIMIZERS)
    choice("precision", PRECISIONS)
    choice("profile", PROFILES)
    choice("device", DEVICES)
    choice("rbs_mode", RBS_MODES)
    choice("weight_decay_params", DECAY_PARAMS)
    choice("lr_schedule", LR_SCHEDULES)
    if cfg.lr_schedule == "onecycle" and cfg.milestones:
        _fail("milestones", cfg.milestones, "must be empty with lr_schedule='onecycle' (the cycle sets every step's lr)")
    for name in ("train_size", "test_size", "input_size"):
        if getattr(cfg, name) is not None:
            num(name, lo=1, integer=True)
    num("crop_padding", lo=0, integer=True)
    num("lam", lo=0)
    num("beta", lo=0)
    num("eta", lo=0)
    num("adv_fraction", lo=0, hi=1)
    num("rbs_k", lo=1, integer=True)
    num("pretrain_epochs", lo=0, integer=True)
    num("eps_warmup_epochs", lo=0, hi=cfg.epochs)
    if cfg.eps > 1:
        _fail("eps", cfg.eps, "must be in [0, 1] (pixel units; did you mean eps/255?)")
    num("eps", lo=0, hi=1)
    num("alpha", lo=0, hi=1, lo_open=cfg.steps > 0)
    num("steps", lo=0, integer=True)
    num("lr", lo=0, lo_open=True)
    num("momentum", lo=0, hi=1)
    num("weight_decay", lo=0)
    num("lr_gamma", lo=0, hi=1, lo_open=True)
    num("epochs", lo=1, integer=True)
    num("batch_size", lo=1, integer=True)
    num("seed", lo=0, integer=True)
    num("probe_size", lo=0, integer=True)
    if len(cfg.ratio) != 2 or any(r < 0 for r in cfg.ratio) or abs(sum(cfg.ratio) - 1) > 1e-6:
        _fail("ratio", cfg.ratio, "must be two non-negative weights (lambda1, lambda2) summing to 1, e.g. (0.5, 0.5)")
    for name, epochs in (("milestones", cfg.epochs), ("pretrain_milestones", cfg.pretrain_epochs)):
        ms = list(getattr(cfg, name))
        if ms != sorted(ms) or any((not isinstance(m, int)) or m < 1 or m > max(epochs, 1) for m in ms):
            _fail(name, tuple(ms), f"must be increasing epochs within 1..{epochs}")
    _check_model_kw(cfg)
    # method-specific checks live with the methods registry (imported lazily to avoid cycles)
    from .methods import check_config

    check_config(cfg)
