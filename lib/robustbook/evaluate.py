"""Robustness evaluation of a trained run: the numbers of the papers' tables, a
gradient-masking checklist recorded with them, and a cache keyed by the suite.

    from robustbook import runs, evaluate
    run = runs.train(cfg)
    result = evaluate.evaluate(run, "fpr_cifar")      # FP&R Table 2 column
    print(evaluate.format_result(result))

A `Suite` says which attacks to run (eps, step sizes, step counts, CW, transfer,
N-Attack, AutoAttack, shifted test sets). `evaluate(run, suite)` writes
`<run dir>/eval/<suite name>-<hash>.json` and returns the same dict; a second call
with the same suite reads the file and computes nothing. The hash covers the
suite's canonical JSON (fields that change numbers), the library version and, with
transfer, the source run's id.

Every attack entry of `result["results"]` holds: `accuracy`, `n`, `seconds`,
`correct` (per-image flags, bit-packed hex; `correct_flags(entry)` unpacks them),
`role` ('table' = a number of a paper table, 'check' = computed only for the
masking checklist) and `evidence` (eps, step size, steps, random start, kappa,
which test images, seeds, the transfer source run).

Keys: `clean`, `pgd-<k>`, `cw-<k>` (suffix `-nostart` without random start),
`transfer/<white-box key>`, `nattack`, `autoattack`, `shift-<dir>/clean`,
`shift-<dir>/<pgd key>`, `check/large-eps`.

`result["checks"]` is the gradient-masking checklist (list of dicts `check`,
`passed` (True/False, None = not applicable), `detail`, `casts_doubt_on` = keys);
`result["doubts"]` maps each key to the failed checks that cast doubt on it, and
`format_result` prints them next to the numbers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from . import __version__
from . import attacks as attacks_mod
from . import data as data_mod
from . import device as device_mod
from . import files
from . import runs as runs_mod
from . import speed as _speed
from . import stats
from .config import RunConfig
from .nattack import nattack as _nattack
from .transforms import SHIFTS, shift as _shift, to_size

__all__ = [
    "Suite",
    "SUITES",
    "get_suite",
    "evaluate",
    "result_path",
    "load_result",
    "craft_transfer",
    "partner_config",
    "masking_checks",
    "judge",
    "rejudged",
    "correct_flags",
    "sections_seconds",
    "spent_seconds",
    "summary_rows",
    "format_result",
    "predict_correct",
    "test_set",
    "pgd_correct",
    "shifted_correct",
]

AUTOATTACK_MODES = ("off", "standard", "cheap")
#: PGD steps of the large-eps check (step size large_eps / 4, random start)
LARGE_EPS_STEPS = 20


class SuiteError(ValueError):
    """A Suite field has a value outside its allowed range."""


# --------------------------------------------------------------------------- the suite
@dataclass(frozen=True)
class Suite:
    """Which attacks an evaluation runs. Frozen; `replace(**kw)` makes a variant, and any
    change of a hashed field gives a new result file (see `hash`)."""

    name: str
    """Short name, the prefix of the result file (`<name>-<hash>.json`)."""
    eps: float
    """l-inf radius in [0, 1] pixel units for every attack of the suite."""
    alpha: Union[float, Tuple[float, ...]]
    """PGD step size; a tuple gives one per `pgd_steps` entry (AELF Table 3 tests with
    PGD(0.031, 5, 0.01) and PGD(0.031, 10, 0.005)). Step counts sharing a step size are
    computed in one PGD run with `record_steps`."""
    pgd_steps: Tuple[int, ...] = ()
    """Step counts of the white-box PGD (cross-entropy) rows."""
    cw_steps: Tuple[int, ...] = ()
    """Step counts of the CW-l-inf rows: PGD on the margin loss with confidence `kappa`, true
    class masked (Madry's challenge code; RLFAT appendix A), run once with `record_steps`."""
    cw_alpha: Optional[float] = None
    """CW step size (None: `alpha`, which must then be a single number)."""
    kappa: float = 50.0
    """CW confidence (Madry et al.; RLFAT appendix A: k = 50)."""
    random_start: Tuple[bool, ...] = (True,)
    """Run every white-box attack once per entry: True = uniform start in the eps-ball,
    False = start at x (AELF appendix C; AELF Table 4 reports both)."""
    restarts: int = 1
    """Random restarts per white-box attack (first fooling restart kept)."""
    n: Optional[int] = None
    """First n images of the run's test set (None = all of them)."""
    skip_misclassified: bool = True
    """Attack only the images the model classifies correctly; the others count as not robust
    (the RobustBench / AutoAttack convention, so robust accuracy <= clean accuracy by
    construction). Saves the attack time of the misclassified share (about 60% for the cpu
    profile's CIFAR models). False = attack every image and count the adversarial prediction
    alone, as the papers' code does; the two differ only on images misclassified clean but
    classified correctly after the attack (`evidence['adv_correct_clean_wrong']` counts them
    when False). Applies to PGD, CW, transfer and the large-eps check; N-Attack always skips
    (RLFAT's protocol), shifted sets have their own clean accuracy and attack every image."""
    transfer: bool = False
    """Also evaluate every white-box table attack crafted on an independently trained copy
    (FP&R's "black box"): same config, seed s^1, unless `evaluate(..., source=)` says otherwise."""
    nattack_n: int = 0
    """Run N-Attack on the first nattack_n test images (0 = off; RLFAT: 1500)."""
    nattack_pop: int = 300
    """N-Attack population size (RLFAT appendix A: b = 300)."""
    nattack_sigma: float = 0.1
    """N-Attack sample std in tanh space (RLFAT appendix A: sigma^2 = 0.01)."""
    nattack_lr: float = 0.008
    """N-Attack learning rate (RLFAT appendix A: eta = 0.008)."""
    nattack_iters: int = 200
    """N-Attack iteration budget (RLFAT appendix A: T = 200)."""
    nattack_official: bool = False
    """False: our N-Attack (scores per sample, checks every iteration, counts a fooling
    sample); True: the official RLFAT ``nattack.py`` (`robustbook.nattack`, official=True)."""
    autoattack: str = "off"
    """'off', 'standard' (APGD-CE, APGD-T, FAB-T, Square; Croce & Hein 2020) or 'cheap'
    (APGD-CE + APGD-T on 3 target classes, 100 iterations each). Not in the papers: a check
    that their PGD/CW numbers are not inflated by gradient masking."""
    autoattack_n: Optional[int] = None
    """First images for AutoAttack (None = the suite's n)."""
    stop_when_fooled: bool = False
    """White-box attacks stop on an image at the first iterate that fools the model
    (`attacks.pgd(stop_when_fooled=True)`): an image counts as broken if any iterate up to the
    row's step count fooled it (AutoAttack's convention) instead of the last iterate only, so
    the accuracy can only be lower (the `stop` section of `robustbook.bench` measures by how
    much) and every fooled image costs no further steps: the attacks of a naturally trained
    model become nearly free. Not with `transfer` (a transfer set must be the full attack, not
    the first point that fools the source)."""
    shifts: Tuple[str, ...] = ()
    """Shifted test sets (AELF Fig. 3, Tables 2 and 6): directions of `transforms.SHIFTS`;
    each gets clean accuracy and the first PGD row's accuracy."""
    shift_pixels: int = 8
    """Shift in pixels (AELF: 8 of 32). The attack on a shifted set follows `skip_misclassified`
    with the set's own clean flags: only the shifted images the model classifies correctly are
    attacked."""
    match_run: bool = False
    """Take eps, step size and steps of PGD and CW from the run's training attack (RLFAT
    appendix A: "the same attack parameters as those of the training process"); then
    `check_steps` becomes (2 x steps,)."""
    check_steps: Tuple[int, ...] = ()
    """Extra PGD step counts used only by the checklist's "accuracy non-increasing in steps"
    test (step size of the longest table PGD). Those below the longest table row are recorded
    in its run on every image, for free; longer ones run on the first `check_n` images only
    (a check needs no full test set: on MNIST's 10000 images, PGD-100 beside the table's PGD-40
    cost 1.5 times the table itself)."""
    large_eps: float = 0.0
    """Radius at which PGD accuracy must be ~0 (checklist; 0 = skip). Runs
    `LARGE_EPS_STEPS` steps of large_eps / 4 with random start."""
    check_n: int = 500
    """First images used by the large-eps check and the check_steps rows beyond the table's."""
    tol: float = 0.01
    """Tolerance (accuracy fraction) of the monotonicity, transfer and N-Attack checks."""
    aa_tol: float = 0.03
    """How far AutoAttack may fall below the strongest PGD/CW before those are flagged
    (AutoAttack is typically 1-3 points below PGD-20 on adversarially trained models)."""
    seed: int = 0
    """Seed of the attacks' random starts and of N-Attack / AutoAttack."""
    batch_size: int = 250
    """Images per attack batch (does not change the numbers; not hashed)."""
    ref: str = ""
    """Where the values come from (paper, table, section; not hashed)."""

    def __post_init__(self) -> None:
        s = object.__setattr__
        for name in ("pgd_steps", "cw_steps", "check_steps", "shifts"):
            v = getattr(self, name)
            if isinstance(v, (str, int)):
                v = (v,)
            s(self, name, tuple(v))
        rs = self.random_start
        s(self, "random_start", (bool(rs),) if isinstance(rs, bool) else tuple(bool(r) for r in rs))
        if isinstance(self.alpha, (list, tuple)):
            s(self, "alpha", tuple(float(a) for a in self.alpha))
        else:
            s(self, "alpha", float(self.alpha))
        _validate_suite(self)

    # ------------------------------------------------------------------
    def replace(self, **changes: Any) -> "Suite":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Suite":
        """Inverse of `to_dict` (e.g. a suite stored in an eval record); an unknown key is a
        SuiteError (a misspelt field would otherwise silently run the default attack)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise SuiteError(f"unknown Suite field(s) {unknown} (stored by another library version, or "
                             f"misspelt); valid fields: {sorted(names)}")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})

    def canonical(self) -> str:
        """Canonical JSON of the fields that change numbers, plus the library version."""
        d = {k: v for k, v in self.to_dict().items() if k not in _NOT_HASHED}
        d["_version"] = __version__
        if self.check_steps:  # long check rows moved to the first check_n images (suites without
            d["_check_rows"] = "first check_n"  # check rows keep their hash and their records)
        if not self.stop_when_fooled:  # added later: suites without it keep their hash and records
            del d["stop_when_fooled"]
        if self.shifts and self.skip_misclassified:  # shifted sets attacked on their clean-correct images
            d["_shifted_sets"] = "clean-correct attacked"
        return json.dumps(d, sort_keys=True, separators=(",", ":"))

    @property
    def hash(self) -> str:
        """12 hex digits of sha256(canonical())."""
        return hashlib.sha256(self.canonical().encode()).hexdigest()[:12]

    def alpha_for(self, steps: int) -> float:
        """Step size of the PGD row with `steps` steps."""
        if isinstance(self.alpha, tuple):
            return self.alpha[self.pgd_steps.index(steps)]
        return self.alpha

    @property
    def cw_step_size(self) -> float:
        return float(self.cw_alpha if self.cw_alpha is not None else self.alpha)

    def resolve(self, cfg: RunConfig) -> "Suite":
        """The concrete suite for a run: with `match_run`, the run's training attack."""
        if not self.match_run:
            return self
        steps = int(cfg.steps)
        if steps < 1 or cfg.eps <= 0:
            raise SuiteError(
                f"suite {self.name!r} takes its attack from the run (match_run), but run "
                f"{cfg.run_id} has no training attack (eps={cfg.eps}, steps={cfg.steps})")
        return self.replace(
            eps=float(cfg.eps), alpha=float(cfg.alpha), pgd_steps=(steps,),
            cw_steps=(steps,) if self.cw_steps else (), cw_alpha=None,
            check_steps=(2 * steps,) if self.check_steps else (), match_run=False)


_NOT_HASHED = ("batch_size", "ref")


def _validate_suite(s: Suite) -> None:
    def fail(field, allowed):
        raise SuiteError(f"Suite.{field}={getattr(s, field)!r} is invalid: {allowed}")

    def ints(field, lo):
        for v in getattr(s, field):
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                fail(field, f"must be ints >= {lo}")

    if not isinstance(s.name, str) or not s.name or "/" in s.name:
        fail("name", "must be a non-empty name without '/'")
    if not (isinstance(s.eps, (int, float)) and 0 < s.eps <= 1):
        fail("eps", "must be in (0, 1] (pixel units, e.g. 8/255)")
    ints("pgd_steps", 1)
    ints("cw_steps", 1)
    ints("check_steps", 1)
    if len(set(s.pgd_steps)) != len(s.pgd_steps) or len(set(s.cw_steps)) != len(s.cw_steps):
        fail("pgd_steps", "step counts must be unique (in pgd_steps and in cw_steps)")
    alphas = s.alpha if isinstance(s.alpha, tuple) else (s.alpha,)
    if any(not (0 < a <= 1) for a in alphas):
        fail("alpha", "step sizes must be in (0, 1]")
    if isinstance(s.alpha, tuple) and len(s.alpha) != len(s.pgd_steps):
        fail("alpha", f"a tuple needs one step size per pgd_steps entry ({len(s.pgd_steps)})")
    if s.cw_steps and s.cw_alpha is None and isinstance(s.alpha, tuple):
        fail("cw_alpha", "must be set when alpha is a tuple and cw_steps are used")
    if s.cw_alpha is not None and not (0 < s.cw_alpha <= 1):
        fail("cw_alpha", "must be in (0, 1]")
    if s.check_steps and not s.pgd_steps:
        fail("check_steps", "needs pgd_steps (they share the longest PGD row's step size)")
    if not s.random_start:
        fail("random_start", "needs at least one entry (True and/or False)")
    if not isinstance(s.restarts, int) or s.restarts < 1:
        fail("restarts", "must be an int >= 1")
    if s.restarts > 1 and not all(s.random_start):
        fail("restarts", "restarts > 1 need random_start=(True,)")
    if s.n is not None and (not isinstance(s.n, int) or s.n < 1):
        fail("n", "must be None or an int >= 1")
    if not isinstance(s.nattack_n, int) or s.nattack_n < 0:
        fail("nattack_n", "must be an int >= 0")
    if s.nattack_pop < 2 or s.nattack_iters < 1 or s.nattack_sigma <= 0 or s.nattack_lr <= 0:
        fail("nattack_pop", "N-Attack needs pop >= 2, iters >= 1, sigma > 0, lr > 0")
    if s.autoattack not in AUTOATTACK_MODES:
        fail("autoattack", f"must be one of {list(AUTOATTACK_MODES)}")
    if s.autoattack_n is not None and (not isinstance(s.autoattack_n, int) or s.autoattack_n < 1):
        fail("autoattack_n", "must be None or an int >= 1")
    for d in s.shifts:
        if d not in SHIFTS:
            fail("shifts", f"directions must be in {list(SHIFTS)}")
    if s.stop_when_fooled and s.transfer:
        fail("stop_when_fooled", "a transfer set must be the full attack on the source, not its first fooling "
                                 "point: use stop_when_fooled=False with transfer=True")
    if s.shifts and not s.pgd_steps:
        fail("shifts", "shifted sets are attacked with the first PGD row: set pgd_steps")
    if not (0 <= s.large_eps <= 1):
        fail("large_eps", "must be in [0, 1]")
    if s.check_n < 1 or s.tol < 0 or s.aa_tol < 0:
        fail("check_n", "check_n >= 1, tol >= 0, aa_tol >= 0")
    if not isinstance(s.batch_size, int) or s.batch_size < 1:
        fail("batch_size", "must be an int >= 1")


#: Named suites, one per paper table (values cite their source in `ref`).
SUITES: Dict[str, Suite] = {
    s.name: s
    for s in (
        Suite(
            "fpr_mnist", eps=0.3, alpha=0.01, pgd_steps=(40,), random_start=(True,), transfer=True,
            check_steps=(5, 100), large_eps=0.6,
            ref="FP&R sec. 4.1 / Table 1: PGD 40 steps of 0.01, eps 0.3, as Madry et al. (random start); "
                "black box = PGD crafted on an independently trained copy. The IJCAI Table 1 caption says "
                "'PGD 5' (recorded as a check row); PGD-100 on the first 500 images and PGD-20 at eps 0.6 are "
                "our checks.",
        ),
        Suite(
            "fpr_cifar", eps=8 / 255, alpha=2 / 255, pgd_steps=(5, 20, 100, 200), cw_steps=(30, 100),
            kappa=50.0, random_start=(True,), transfer=True, large_eps=64 / 255,
            ref="FP&R sec. 4.2 / Tables 2, 3, 5 (IJCAI Tables 2, 3, 5, 6): eps 8/255, step 2/255, PGD 5/20/100/200, "
                "CW 30/100, white box and black box (transfer from an independently trained copy). CW confidence "
                "50 and the random start follow Madry's cifar10_challenge (the paper does not state them).",
        ),
        Suite(
            "aelf_mnist", eps=0.3, alpha=0.02, pgd_steps=(16,), random_start=(False,),
            shifts=SHIFTS, shift_pixels=8, check_steps=(40,), large_eps=0.6,
            ref="AELF sec. 4.1 / Tables 2 and 6: A*(0.3, 16, 0.02), PGD without initial noise (appendix C), "
                "natural and adversarial accuracy on the test set and its 4 shifted copies (8 of 32 pixels, Fig. 3).",
        ),
        Suite(
            "aelf_cifar", eps=0.031, alpha=(0.01, 0.005), pgd_steps=(5, 10), random_start=(False,),
            check_steps=(20,), large_eps=64 / 255,
            ref="AELF sec. 4.2 / Table 3 (and Fig. 1): A*(5) = PGD(0.031, 5, 0.01), A*(10) = PGD(0.031, 10, 0.005), "
                "without initial noise (appendix C).",
        ),
        Suite(
            "aelf_wrn", eps=0.031, alpha=0.0062, pgd_steps=(10,), random_start=(False, True),
            check_steps=(20,), large_eps=64 / 255,
            ref="AELF sec. 4.3 / Table 4: PGD(0.031, 10, 0.0062), reported without and with random initial noise.",
        ),
        Suite(
            "aelf_wrn100", eps=0.03, alpha=0.0075, pgd_steps=(7,), random_start=(False,),
            check_steps=(20,), large_eps=64 / 255,
            ref="AELF sec. 4.3 / Table 5 (CIFAR-100): PGD(0.03, 7, 0.0075) as claimed by RLFAT; no initial noise "
                "(appendix C).",
        ),
        Suite(
            "rlfat", eps=0.03, alpha=0.0075, pgd_steps=(10,), cw_steps=(10,), kappa=50.0, random_start=(True,),
            match_run=True, check_steps=(20,), nattack_n=1500, large_eps=64 / 255,
            ref="RLFAT sec. 4.1 / Table 1, appendix A: PGD and CW with the training attack (eps 0.03, step 0.0075, "
                "10 steps CIFAR-10, 7 CIFAR-100/STL-10; taken from the run), CW = PGD on the margin loss with "
                "k = 50 (we mask the true class, unlike the official code), N-Attack on the first 1500 test images "
                "(T = 200, b = 300, sigma^2 = 0.01, eta = 0.008). Random start: RLFAT eq. 1.",
        ),
        Suite(
            "smoke", eps=0.1, alpha=0.025, pgd_steps=(2, 5), cw_steps=(3,), random_start=(True,), n=32,
            transfer=True, nattack_n=8, nattack_pop=20, nattack_iters=10, autoattack="cheap", autoattack_n=16,
            shifts=("left",), shift_pixels=4, check_steps=(8,), large_eps=0.5, check_n=32,
            ref="plumbing check for tests: every section of the evaluation on a few images; numbers meaningless",
        ),
    )
}


def get_suite(suite: Union[str, Suite]) -> Suite:
    """A Suite by name (or the Suite itself)."""
    if isinstance(suite, Suite):
        return suite
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; choose one of {sorted(SUITES)} or pass a Suite")
    return SUITES[suite]


# --------------------------------------------------------------------------- small helpers
def _log(verbose: bool, msg: str) -> None:
    if verbose:
        print(f"[evaluate] {msg}", file=sys.stderr, flush=True)


def _verbose(progress: Optional[bool]) -> bool:
    return os.environ.get("ROBUSTBOOK_QUIET", "") == "" if progress is None else bool(progress)


def _device(model: nn.Module) -> torch.device:
    return device_mod.of(model)


def _pack(flags: torch.Tensor) -> str:
    return np.packbits(flags.detach().cpu().numpy().astype(bool)).tobytes().hex()


def correct_flags(entry: Mapping[str, Any]) -> np.ndarray:
    """Per-image correctness (bool array of length entry['n']) of a result entry."""
    bits = np.unpackbits(np.frombuffer(bytes.fromhex(entry["correct"]), dtype=np.uint8))
    return bits[: entry["n"]].astype(bool)


def sections_seconds(results: Mapping[str, Mapping[str, Any]]) -> float:
    """Seconds the sections of an evaluation took, each attack run once (the entries recorded
    from one PGD run share its seconds): a lower bound of the evaluation's time."""
    return float(sum({round(float(e.get("seconds", 0.0)), 3) for e in results.values()}))


def spent_seconds(record: Mapping[str, Any]) -> float:
    """CPU seconds an evaluation record cost: its `seconds_total`, or the sum of its sections
    where that is larger (when an interrupted evaluation was resumed, records written before
    the partial file kept its time hold only the last process's seconds)."""
    return max(float(record.get("seconds_total") or 0.0), sections_seconds(record.get("results", {})))


def _entry(correct: torch.Tensor, seconds: float, role: str, attack: str, evidence: dict) -> dict:
    n = int(correct.numel())
    return {
        "accuracy": float(correct.float().mean()) if n else float("nan"),
        "n": n,
        "seconds": round(float(seconds), 3),
        "role": role,
        "attack": attack,
        "correct": _pack(correct),
        "evidence": evidence,
    }


def _sha1(t: torch.Tensor) -> str:
    return hashlib.sha1(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def _atomic_json(obj, path: Path) -> None:
    files.atomic_write_json(obj, path)


class _Frozen:
    """Eval mode, parameters without requires_grad; both restored on exit."""

    def __init__(self, model: nn.Module):
        self.model = model

    def __enter__(self):
        self.modes = [(m, m.training) for m in self.model.modules()]
        self.flags = [(p, p.requires_grad) for p in self.model.parameters()]
        self.model.eval()
        for p, _ in self.flags:
            p.requires_grad_(False)
        return self.model

    def __exit__(self, *exc):
        for m, t in self.modes:
            m.training = t
        for p, f in self.flags:
            p.requires_grad_(f)
        return False


def test_set(cfg: RunConfig):
    """The run's test `Dataset`, exactly as `runs.prepare_data(cfg)[1]` builds it (class-balanced
    subset with seed 0, resized to `input_size`), without loading and resizing the train split."""
    test = data_mod.load(cfg.dataset, "test", n=cfg.test_size, seed=0)
    if cfg.input_size:
        test.x = to_size(test.x, cfg.input_size)
    return test


# --------------------------------------------------------------------------- attack cores
def predict_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 250) -> torch.Tensor:
    """bool (N,): model(x).argmax == y, in eval mode under torch.inference_mode (modes restored)."""
    device = _device(model)
    out = []
    with _Frozen(model), torch.inference_mode():
        for i in range(0, len(y), batch_size):
            xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
            out.append((model(xb).argmax(1) == yb).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool)


def pgd_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float,
                record_steps: Sequence[int], random_start: bool = True, loss: str = "ce",
                restarts: int = 1, kappa: float = 50.0, seed: int = 0, batch_size: int = 250,
                keep_adv: bool = False, stop_when_fooled: bool = False
                ) -> Tuple[Dict[int, torch.Tensor], Dict[int, torch.Tensor]]:
    """One PGD run of max(record_steps) steps per batch (`attacks.pgd` with `record_steps`,
    and `stop_when_fooled`).

    Returns ({steps: bool (N,) correct after that many steps}, {steps: x_adv} when keep_adv).
    The random starts come from one generator seeded with `seed`, drawn batch after batch.
    """
    device = _device(model)
    record = sorted(set(int(k) for k in record_steps))
    gen = device_mod.generator(device, seed)
    correct: Dict[int, List[torch.Tensor]] = {k: [] for k in record}
    advs: Dict[int, List[torch.Tensor]] = {k: [] for k in record}
    for i in range(0, len(y), batch_size):
        xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
        out = attacks_mod.pgd(model, xb, yb, eps, alpha, record[-1], random_start=random_start, loss=loss,
                              restarts=restarts, record_steps=record, kappa=kappa, generator=gen,
                              stop_when_fooled=stop_when_fooled)
        with _Frozen(model), torch.inference_mode():
            for k in record:
                correct[k].append((model(out[k]).argmax(1) == yb).cpu())
                if keep_adv:
                    advs[k].append(out[k].detach().cpu())
    if len(y) == 0:  # nothing to attack (e.g. every image misclassified and skipped)
        return ({k: torch.zeros(0, dtype=torch.bool) for k in record},
                {k: x.detach().cpu()[:0] for k in record} if keep_adv else {})
    flags = {k: torch.cat(v) for k, v in correct.items()}
    return flags, ({k: torch.cat(v) for k, v in advs.items()} if keep_adv else {})


def _attacked_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, clean: torch.Tensor, skip: bool,
                      eps: float, alpha: float, record_steps: Sequence[int], **kw) -> Dict[int, torch.Tensor]:
    """`pgd_correct` flags for all N images; with `skip`, only the clean-correct ones are
    attacked and the others are False (`Suite.skip_misclassified`)."""
    if not skip:
        flags, _ = pgd_correct(model, x, y, eps, alpha, record_steps, **kw)
        return flags
    idx = clean.nonzero().flatten()
    sub, _ = pgd_correct(model, x[idx], y[idx], eps, alpha, record_steps, **kw)
    out = {}
    for k, v in sub.items():
        full = torch.zeros(len(y), dtype=torch.bool)
        full[idx] = v
        out[k] = full
    return out


def _attacked_evidence(clean: torch.Tensor, flags: torch.Tensor, skip: bool) -> dict:
    if skip:
        return {"attacked": f"the {int(clean.sum())} of {len(clean)} images classified correctly (the others "
                            "count as not robust)"}
    return {"attacked": f"all {len(clean)} images",
            "adv_correct_clean_wrong": int((flags & ~clean).sum())}


def shifted_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, directions: Iterable[str] = SHIFTS,
                    pixels: int = 8, attack: Optional[Mapping[str, Any]] = None, batch_size: int = 250,
                    seed: int = 0, skip_misclassified: bool = False) -> Dict[str, Dict[str, torch.Tensor]]:
    """Per-image correctness on shifted copies of x (AELF Fig. 3, Tables 2/6):
    {direction: {'clean': flags, 'adv': flags}}; 'adv' (when `attack` = dict(eps, alpha, steps,
    random_start, optional stop_when_fooled)) is PGD crafted on the shifted images themselves;
    with `skip_misclassified` only the shifted images classified correctly are attacked (the
    others count as not robust)."""
    out: Dict[str, Dict[str, torch.Tensor]] = {}
    for d in directions:
        xs = _shift(x, d, pixels)
        row = {"clean": predict_correct(model, xs, y, batch_size)}
        if attack is not None:
            row["adv"] = _shifted_adv(model, xs, y, row["clean"], attack, batch_size, seed, skip_misclassified)
        out[d] = row
    return out


def _shifted_adv(model: nn.Module, xs: torch.Tensor, y: torch.Tensor, clean: torch.Tensor,
                 attack: Mapping[str, Any], batch_size: int, seed: int, skip_misclassified: bool) -> torch.Tensor:
    """Per-image correctness under `attack` (see `shifted_correct`) of the shifted images xs,
    whose clean flags are `clean`."""
    k = attack["steps"]
    return _attacked_correct(model, xs, y, clean, skip_misclassified, attack["eps"], attack["alpha"], [k],
                             random_start=attack.get("random_start", True), seed=seed, batch_size=batch_size,
                             stop_when_fooled=attack.get("stop_when_fooled", False))[k]


def _autoattack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, mode: str, seed: int,
                batch_size: int) -> torch.Tensor:
    """x_adv of pyautoattack's AutoAttack ('standard', or 'cheap' = APGD-CE + APGD-T on 3 targets)."""
    import logging

    from pyautoattack import AutoAttack

    device = _device(model)
    logging.getLogger("auto-attack").setLevel(logging.ERROR)
    with _Frozen(model):
        if mode == "standard":
            aa = AutoAttack(model, device=device, eps=float(eps), norm="Linf", seed=seed, version="standard")
        else:
            aa = AutoAttack(model, attacks=["apgd-ce", "apgd-t"], device=device, eps=float(eps), norm="Linf",
                            seed=seed, version="custom")
            aa.apgd.n_restarts = 1
            aa.apgd_targeted.n_restarts = 1
            aa.apgd_targeted.n_target_classes = 3
        aa.verbose = False
        with torch.inference_mode(False):
            x_adv, _ = aa.run_standard_evaluation(x.to(device), y.to(device), batch_size=batch_size)
    return x_adv.detach()


# --------------------------------------------------------------------------- transfer
def partner_config(cfg: RunConfig, seeds: Optional[Sequence[int]] = None) -> RunConfig:
    """The independently trained copy FP&R's black-box attack crafts on: same config, the next
    seed of `seeds` cyclically (issue 10: with seeds 0, 1, 2 seed s is attacked from (s+1) mod 3,
    see `presets.Experiment.transfer_seed`); without `seeds`, seed s^1 (0 <-> 1, 2 <-> 3)."""
    from .presets import partner_seed

    return cfg.replace(seed=partner_seed(cfg.seed, seeds or ()))


def _as_run(source, like: runs_mod.Run) -> runs_mod.Run:
    if isinstance(source, runs_mod.Run):
        return source
    if isinstance(source, RunConfig):
        return runs_mod.train(source, root=like.dir.parent)
    if isinstance(source, (str, Path)):
        return runs_mod.load_run(source)
    raise TypeError(f"source must be a Run, RunConfig or run folder, got {type(source).__name__}")


def _source_id(run: runs_mod.Run, source) -> str:
    if source is None:
        return partner_config(run.cfg).run_id
    if isinstance(source, runs_mod.Run):
        return source.id
    if isinstance(source, RunConfig):
        return source.run_id
    return Path(source).name


def _whitebox_specs(suite: Suite) -> List[dict]:
    """Every white-box attack run of the suite: one dict per PGD/CW run (shared record_steps)."""
    specs = []
    for rs in suite.random_start:
        suffix = "" if rs else "-nostart"
        groups: Dict[float, List[int]] = {}
        for k in suite.pgd_steps:
            groups.setdefault(suite.alpha_for(k), []).append(k)
        longest = max(suite.pgd_steps) if suite.pgd_steps else None
        for alpha, steps in groups.items():
            checks = [c for c in suite.check_steps if longest in steps and c not in steps]
            specs.append(dict(loss="ce", alpha=alpha, random_start=rs, table=sorted(steps),
                              check=sorted(c for c in checks if c < longest), prefix="pgd", suffix=suffix))
            if any(c > longest for c in checks):  # on the first check_n images only (Suite.check_steps)
                specs.append(dict(loss="ce", alpha=alpha, random_start=rs, table=[],
                                  check=sorted(c for c in checks if c > longest), prefix="pgd", suffix=suffix,
                                  first=suite.check_n))
        if suite.cw_steps:
            specs.append(dict(loss="cw", alpha=suite.cw_step_size, random_start=rs, table=sorted(suite.cw_steps),
                              check=[], prefix="cw", suffix=suffix))
    return specs


def _key(spec: dict, k: int) -> str:
    return f"{spec['prefix']}-{k}{spec['suffix']}"


def _evidence(suite: Suite, spec: dict, k: int, images: str) -> dict:
    ev = {"eps": suite.eps, "alpha": spec["alpha"], "steps": k, "random_start": spec["random_start"],
          "restarts": suite.restarts, "loss": spec["loss"], "images": images, "seed": suite.seed}
    if spec["loss"] == "cw":
        ev["kappa"] = suite.kappa
        ev["true_class_masked"] = True
    if suite.stop_when_fooled:
        ev["stop_when_fooled"] = True
    return ev


def _attack_record(spec: dict) -> List[int]:
    return sorted(set(spec["table"]) | set(spec["check"]))


def attack_path(run: runs_mod.Run, suite: Suite, spec: dict, test_sha1: str) -> Path:
    """Where `attacked` keeps the per-image results of one white-box attack of `suite` on `run`
    (`<run dir>/adv/<loss>-<hash>.pt`, git-ignored like the weights): keyed by the attack's
    parameters, the run's weights hash and the test images."""
    d = {"eps": suite.eps, "alpha": spec["alpha"], "loss": spec["loss"], "random_start": spec["random_start"],
         "record": _attack_record(spec), "kappa": suite.kappa, "seed": suite.seed, "test": test_sha1,
         "weights": _weights_of(run.dir, getattr(run, "model", None)), "_version": __version__}
    if suite.stop_when_fooled:
        d["stop_when_fooled"] = True
    h = hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]
    return run.dir / "adv" / f"{spec['loss']}-{h}.pt"


def attacked(run: runs_mod.Run, suite: Suite, spec: dict, x: torch.Tensor, y: torch.Tensor,
             idx: torch.Tensor, verbose: bool = False) -> dict:
    """White-box PGD/CW attack `spec` of `suite` on `run` for the test images `idx` (of the whole
    test set `x`, `y`), one `record_steps` run per image; results are kept per image in
    `attack_path(...)`, so an image attacked for one purpose is not attacked again for another.

    The same attack serves the run's own white-box columns (its clean-correct images) and the
    black-box columns of the run it is the transfer source for (that run's clean-correct
    images): the sets overlap, and each image is attacked once. Per image the random start is
    U(-eps, eps) drawn for the whole test set from one generator seeded with `suite.seed`, so an
    image's attack does not depend on which other images are attacked with it (batch effects
    are floating-point only).

    Returns {'correct': {k: bool (len(idx),)} (the run's own prediction after k steps),
    'x_adv': {k: images} for the table steps, 'attacked_now', 'seconds', 'path'}."""
    model = run.model
    device = _device(model)
    record = _attack_record(spec)
    test_sha1 = _sha1(torch.cat([x.flatten(), y.float()]))
    path = attack_path(run, suite, spec, test_sha1)
    n = len(y)
    if path.exists():
        store = torch.load(path, map_location="cpu", weights_only=True)
    else:
        store = {"have": torch.zeros(n, dtype=torch.bool), "correct": {k: torch.zeros(n, dtype=torch.bool) for k in record},
                 "delta": {k: torch.zeros(x.shape, dtype=torch.float16) for k in spec["table"]}, "seconds": 0.0,
                 "run_id": run.id, "version": __version__}
    idx = idx.cpu().long()
    todo = idx[~store["have"][idx]]
    t0 = time.perf_counter()
    if len(todo):
        noise = None
        if spec["random_start"]:
            gen = device_mod.generator(device_mod.HOST, suite.seed)  # x lives on the host
            noise = (torch.rand(x.shape, generator=gen, device=device_mod.rng_device(gen)) * 2 - 1) * suite.eps
        _log(verbose, f"{run.id} {spec['prefix']}{spec['suffix']} {record}: attacking {len(todo)} images "
                      f"({len(idx) - len(todo)} of {len(idx)} already attacked)")
        bs = suite.batch_size
        for i in range(0, len(todo), bs):
            b = todo[i:i + bs]
            xb, yb = x[b].to(device), y[b].to(device)
            x0 = (x[b] + noise[b]).clamp(0, 1).to(device) if noise is not None else None
            t1 = time.perf_counter()
            out = attacks_mod.pgd(model, xb, yb, suite.eps, spec["alpha"], record[-1], random_start=False,
                                  loss=spec["loss"], record_steps=record, kappa=suite.kappa, x_init=x0,
                                  stop_when_fooled=suite.stop_when_fooled)
            with _Frozen(model), torch.inference_mode():
                for k in record:
                    store["correct"][k][b] = (model(out[k]).argmax(1) == yb).cpu()
            for k in spec["table"]:
                store["delta"][k][b] = (out[k].detach().cpu() - x[b]).half()
            store["have"][b] = True
            store["seconds"] += time.perf_counter() - t1
            files.atomic_torch_save(store, path)  # a kill loses at most one batch
    dt = time.perf_counter() - t0
    xi = x[idx]
    x_adv = {k: (xi + store["delta"][k][idx].float().clamp(-suite.eps, suite.eps)).clamp(0, 1) for k in spec["table"]}
    return {"correct": {k: store["correct"][k][idx].clone() for k in record}, "x_adv": x_adv,
            "attacked_now": int(len(todo)), "seconds": dt, "path": str(path)}


def craft_transfer(source: runs_mod.Run, suite: Union[str, Suite], idx: Optional[torch.Tensor] = None,
                   progress: Optional[bool] = None, test_ds=None) -> dict:
    """Adversarial test images crafted on `source` for every white-box table attack of `suite`
    (its test images `idx`, default all): {'x_adv': {key: images}, 'idx', 'source_run',
    'seconds': {key: s}, 'attacked_now': {key: n}, 'path': {key: cache file}}. Shares `attacked`'s
    per-image store with the source's own white-box evaluation. Images are valid attacks: the
    float16 perturbations are re-projected onto the eps-ball and [0, 1]."""
    suite = get_suite(suite).resolve(source.cfg)
    test_ds = test_set(source.cfg) if test_ds is None else test_ds  # (the source's, when already loaded)
    n = min(suite.n or len(test_ds), len(test_ds))
    x, y = test_ds.x[:n], test_ds.y[:n]
    idx = torch.arange(n) if idx is None else torch.as_tensor(idx).long().flatten()
    if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= n):
        raise IndexError(f"craft_transfer: idx must index the {n} evaluated test images of {source.id} "
                         f"(0..{n - 1}); got values in {int(idx.min())}..{int(idx.max())}")
    out = {"x_adv": {}, "idx": idx, "source_run": source.id, "seconds": {}, "attacked_now": {}, "path": {}}
    for spec in _whitebox_specs(suite):
        if not spec["table"]:  # check rows: white box only
            continue
        got = attacked(source, suite, spec, x, y, idx, _verbose(progress))
        for k in spec["table"]:
            key = _key(spec, k)
            out["x_adv"][key] = got["x_adv"][k]
            out["seconds"][key], out["attacked_now"][key], out["path"][key] = got["seconds"], got["attacked_now"], got["path"]
    return out


# --------------------------------------------------------------------------- evaluate
def _weights_of(folder: Path, model: Optional[nn.Module] = None) -> str:
    """The weights hash of a run (its committed weights.json; computed from `model` if absent)."""
    wid = runs_mod.weights_id(folder)
    if wid is None and model is not None:
        wid = runs_mod.weights_sha256(model.state_dict())
    return wid or "unknown-weights"


def _result_hash(suite: Suite, source_id: Optional[str], weights: str = "", source_weights: str = "") -> str:
    """Hash naming an evaluation record: the suite (and library version), the hash of the
    weights it measured, and for transfer suites the source run and its weights. The test data
    is fixed by the run id (its config and data fingerprint) and recorded inside the record.
    A record of other weights is never found, so a stale record is recomputed, never shown."""
    text = suite.canonical() + f"|weights={weights}"
    if suite.transfer:
        text += f"|transfer-source={source_id}|source-weights={source_weights}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _source_weights(run: runs_mod.Run, source) -> str:
    if isinstance(source, runs_mod.Run):
        return _weights_of(source.dir, source.model)
    folder = (Path(source) if isinstance(source, (str, Path))
              else runs_mod.run_dir(source if isinstance(source, RunConfig) else partner_config(run.cfg),
                                    run.dir.parent))
    return _weights_of(folder)


def result_path(run: runs_mod.Run, suite: Union[str, Suite], source=None) -> Path:
    """`<run dir>/eval/<suite name>-<hash>.json` of `evaluate(run, suite, source)`; needs no
    weights (the hashes come from the committed weights.json files)."""
    suite = get_suite(suite).resolve(run.cfg)
    src_w = _source_weights(run, source) if suite.transfer else ""
    h = _result_hash(suite, _source_id(run, source), _weights_of(run.dir, getattr(run, "model", None)), src_w)
    return run.dir / "eval" / f"{suite.name}-{h}.json"


def load_result(run: runs_mod.Run, suite: Union[str, Suite], source=None) -> Optional[dict]:
    """The stored result, or None when it has not been computed; its checklist is judged again
    with today's rules (`rejudged`)."""
    path = result_path(run, suite, source)
    return rejudged(json.loads(path.read_text()), get_suite(suite).resolve(run.cfg)) if path.exists() else None


def judge(results: Mapping[str, dict], suite: Suite) -> Tuple[List[dict], Dict[str, List[str]]]:
    """The gradient-masking checklist of `results` and, per result key, the failed checks that
    cast doubt on it."""
    checks = masking_checks(results, suite)
    doubts: Dict[str, List[str]] = {}
    for c in checks:
        if c["passed"] is False:
            for key in c["casts_doubt_on"]:
                doubts.setdefault(key, []).append(c["check"])
    return checks, doubts


def rejudged(result: dict, suite: Suite) -> dict:
    """`result` with its checks and doubts recomputed from its per-image flags by the current
    checklist: a refined rule reaches every stored evaluation without re-attacking (the
    record's own `checks` are those of the day it was computed)."""
    checks, doubts = judge(result["results"], suite)
    return {**result, "checks": checks, "doubts": doubts}


def evaluate(run: runs_mod.Run, suite: Union[str, Suite] = "smoke", source=None, recompute: bool = False,
             progress: Optional[bool] = None) -> dict:
    """Evaluate `run` with `suite` (name or Suite); cached in `result_path(run, suite, source)`.

    `source` (transfer suites only): the run the transferred examples are crafted on: a Run,
    a RunConfig (trained if it has not been, like runs.train) or a run folder; default the
    partner copy `partner_config(run.cfg)` (trained when missing).
    """
    if not isinstance(run, runs_mod.Run):
        raise TypeError(f"evaluate() takes a runs.Run (from runs.train / runs.load_run), got {type(run).__name__}")
    suite = get_suite(suite).resolve(run.cfg)
    source_id = _source_id(run, source)
    if suite.transfer and source is None:
        source = partner_config(run.cfg)
    if suite.transfer and isinstance(source, RunConfig) and runs_mod.weights_id(runs_mod.run_dir(source, run.dir.parent)) is None:
        source = runs_mod.train(source, root=run.dir.parent)  # its weights hash names the record
    path = result_path(run, suite, source)
    if path.exists() and not recompute:
        return rejudged(json.loads(path.read_text()), suite)
    fast = _speed.enabled_by_default()
    with _speed.fast(fast):
        return _evaluate(run, suite, source, source_id, path, _verbose(progress), fast, progress)


def _evaluate(run, suite: Suite, source, source_id, path: Path, verbose: bool, fast: bool, progress) -> dict:
    t_start = time.perf_counter()
    model = run.model
    if fast:  # channels_last weights: the same function, faster convolutions (robustbook.speed)
        _speed.prepare_model(model)
    device = _device(model)
    test_ds = test_set(run.cfg)
    n = min(suite.n or len(test_ds), len(test_ds))
    x, y = test_ds.x[:n], test_ds.y[:n]
    images = f"first {n} of {test_ds.describe()}"
    bs = suite.batch_size
    # each section's entries are saved as it finishes (`<record>.partial.json`), so a killed
    # evaluation resumes after its last finished attack; the partial file is checked against
    # the test images before it is trusted
    partial_path = path.with_name(path.stem + ".partial.json")
    test_sha1 = _sha1(torch.cat([x.flatten(), y.float()]))
    results: Dict[str, dict] = {}
    seconds_earlier = 0.0  # spent by earlier, interrupted processes on the entries resumed here
    if partial_path.exists():
        try:
            saved = json.loads(partial_path.read_text())
            if saved.get("test_sha1") == test_sha1:
                results = saved["results"]
                seconds_earlier = float(saved.get("seconds_spent", 0.0)) or sections_seconds(results)
                _log(verbose, f"{run.id} resuming the evaluation: {len(results)} entries already done")
        except (json.JSONDecodeError, KeyError):
            _log(verbose, f"{partial_path} is damaged; evaluating from the start")

    def save_partial() -> None:
        files.atomic_write_json({"test_sha1": test_sha1, "results": results,
                                 "seconds_spent": seconds_earlier + time.perf_counter() - t_start}, partial_path)

    def done(*keys: str) -> bool:
        return bool(keys) and all(k in results for k in keys)

    # clean (always recomputed: every attack section needs the flags)
    t0 = time.perf_counter()
    clean = predict_correct(model, x, y, bs)
    results["clean"] = _entry(clean, time.perf_counter() - t0, "table", "clean", {"images": images})
    _log(verbose, f"{run.id} clean {results['clean']['accuracy']:.4f}")

    # white box: one PGD run per (loss, step size, start) with record_steps
    specs = _whitebox_specs(suite)
    for spec in specs:
        steps = _attack_record(spec)
        if done(*[_key(spec, k) for k in steps]):
            continue
        t0 = time.perf_counter()
        shared = ""
        m = min(spec.get("first") or n, n)  # check rows beyond the table's: the first check_n images
        images_m = images if m == n else f"first {m} of {test_ds.describe()}"
        if suite.restarts == 1:  # per-image store shared with the transfer crafting (`attacked`)
            idx = clean[:m].nonzero().flatten() if suite.skip_misclassified else torch.arange(m)
            got = attacked(run, suite, spec, x, y, idx, verbose)
            flags = {}
            for k in steps:
                flags[k] = torch.zeros(m, dtype=torch.bool)
                flags[k][idx] = got["correct"][k]
            shared = (f"; {got['attacked_now']} of {len(idx)} images attacked now, the others earlier "
                      f"(the run's per-image attack store, {os.path.relpath(got['path'], run.dir.parent)})")
        else:
            flags = _attacked_correct(model, x[:m], y[:m], clean[:m], suite.skip_misclassified, suite.eps,
                                      spec["alpha"], steps, random_start=spec["random_start"], loss=spec["loss"],
                                      restarts=suite.restarts, kappa=suite.kappa, seed=suite.seed, batch_size=bs,
                                      stop_when_fooled=suite.stop_when_fooled)
        dt = time.perf_counter() - t0
        for k in steps:
            ev = _evidence(suite, spec, k, images_m)
            ev.update(_attacked_evidence(clean[:m], flags[k], suite.skip_misclassified))
            ev["timing"] = f"one {spec['loss']} PGD run of {steps[-1]} steps recorded at {steps}: {dt:.1f} s" + shared
            role = "table" if k in spec["table"] else "check"
            results[_key(spec, k)] = _entry(flags[k], dt, role, "cw" if spec["loss"] == "cw" else "pgd", ev)
        _log(verbose, f"{run.id} {spec['prefix']}{spec['suffix']} {steps}: "
                      + ", ".join(f"{k}:{float(flags[k].float().mean()):.4f}" for k in steps) + f" ({dt:.0f} s)")
        save_partial()

    # transfer (FP&R black box)
    transfer_source = None
    transfer_keys = [f"transfer/{_key(spec, k)}" for spec in specs for k in spec["table"]]
    if suite.transfer and done(*transfer_keys):
        transfer_source = results[transfer_keys[0]]["evidence"].get("source_run")
    elif suite.transfer:
        src = _as_run(source, run) if source is not None else runs_mod.train(partner_config(run.cfg),
                                                                              root=run.dir.parent)
        if src.id == run.id:
            raise ValueError("the transfer source is the evaluated run itself; pass another run as source=")
        transfer_source = src.id
        # with skip_misclassified only the images the target classifies correctly are crafted
        # (the others count as not robust anyway): the set is crafted for this target
        idx = torch.nonzero(clean).flatten() if suite.skip_misclassified else torch.arange(len(y))
        if suite.restarts != 1:
            raise ValueError("transfer suites craft with restarts=1 (the per-image attack store); got "
                             f"restarts={suite.restarts}")
        src_test = test_set(src.cfg)
        if len(src_test.y) < len(y) or not (torch.equal(src_test.y[:len(y)], y) and torch.equal(src_test.x[:len(y)], x)):
            raise ValueError(f"the transfer source {src.id} has other test images than {run.id} "
                             "(another dataset, subset or input size): pass a source trained on the same data")
        t0 = time.perf_counter()
        crafted = craft_transfer(src, suite, idx, progress=progress, test_ds=src_test)
        craft_s = time.perf_counter() - t0
        for spec in specs:
            for k in spec["table"]:
                key = _key(spec, k)
                t1 = time.perf_counter()
                flags = torch.zeros(len(y), dtype=torch.bool)
                flags[idx] = predict_correct(model, crafted["x_adv"][key], y[idx], bs).cpu()
                ev = _evidence(suite, spec, k, images)
                ev.update(_attacked_evidence(clean, flags, suite.skip_misclassified))
                ev.update(source_run=src.id, crafted_on_source_seconds=round(crafted["seconds"][key], 3),
                          crafted_now=crafted["attacked_now"][key],
                          crafted_file=os.path.relpath(crafted["path"][key], run.dir.parent))
                ev["crafted_images"] = int(len(idx))
                results[f"transfer/{key}"] = _entry(flags, time.perf_counter() - t1, "table", "transfer", ev)
        _log(verbose, f"{run.id} transfer from {src.id} ({craft_s:.0f} s, "
                      f"{max(crafted['attacked_now'].values(), default=0)} of {len(idx)} images crafted now)")
        save_partial()

    # N-Attack (RLFAT black box)
    if suite.nattack_n and not done("nattack"):
        m = min(suite.nattack_n, len(test_ds))
        xm, ym = test_ds.x[:m], test_ds.y[:m]
        gen = device_mod.generator(device, suite.seed)
        t0 = time.perf_counter()
        res = _nattack(model, xm.to(device), ym.to(device), suite.eps, pop=suite.nattack_pop,
                       sigma=suite.nattack_sigma, lr=suite.nattack_lr, max_iter=suite.nattack_iters, generator=gen,
                       official=suite.nattack_official)
        dt = time.perf_counter() - t0
        ev = {"eps": suite.eps, "pop": suite.nattack_pop, "sigma": suite.nattack_sigma, "lr": suite.nattack_lr,
              "max_iter": suite.nattack_iters, "official": suite.nattack_official, "images": f"first {m} of {test_ds.describe()}", "seed": suite.seed,
              "skipped_misclassified": int((~res.clean_correct).sum()),
              "success_rate": res.success_rate, "mean_queries": float(res.queries.float().mean())}
        results["nattack"] = _entry(res.robust.cpu(), dt, "table", "nattack", ev)
        _log(verbose, f"{run.id} nattack {results['nattack']['accuracy']:.4f} ({dt:.0f} s)")
        save_partial()

    # AutoAttack (not in the papers: a gradient-masking check)
    if suite.autoattack != "off" and not done("autoattack"):
        m = min(suite.autoattack_n or n, n)
        t0 = time.perf_counter()
        x_aa = _autoattack(model, x[:m], y[:m], suite.eps, suite.autoattack, suite.seed, bs)
        flags = predict_correct(model, x_aa.cpu(), y[:m], bs)
        dt = time.perf_counter() - t0
        ev = {"eps": suite.eps, "version": suite.autoattack,
              "attacks": ["apgd-ce", "apgd-t", "fab-t", "square"] if suite.autoattack == "standard"
              else ["apgd-ce", "apgd-t (3 targets)"],
              "images": f"first {m} of {test_ds.describe()}", "seed": suite.seed, "package": "pyautoattack"}
        results["autoattack"] = _entry(flags, dt, "check", "autoattack", ev)
        _log(verbose, f"{run.id} autoattack {results['autoattack']['accuracy']:.4f} ({dt:.0f} s)")
        save_partial()

    # shifted test sets (AELF Tables 2 and 6)
    if suite.shifts:
        k0 = suite.pgd_steps[0]
        rs0 = suite.random_start[0]
        atk = dict(eps=suite.eps, alpha=suite.alpha_for(k0), steps=k0, random_start=rs0)
        if suite.stop_when_fooled:
            atk["stop_when_fooled"] = True
        pkey = f"pgd-{k0}{'' if rs0 else '-nostart'}"
        for d in suite.shifts:
            if done(f"shift-{d}/clean", f"shift-{d}/{pkey}"):
                continue
            ev = {"direction": d, "pixels": suite.shift_pixels, "images": images}
            t0 = time.perf_counter()
            xs = _shift(x, d, suite.shift_pixels)
            clean_s = predict_correct(model, xs, y, bs)  # not `clean`: the large-eps check below uses x's flags
            results[f"shift-{d}/clean"] = _entry(clean_s, time.perf_counter() - t0, "table", "shift", ev)
            t0 = time.perf_counter()
            adv_s = _shifted_adv(model, xs, y, clean_s, atk, bs, suite.seed, suite.skip_misclassified)
            results[f"shift-{d}/{pkey}"] = _entry(adv_s, time.perf_counter() - t0, "table", "shift",
                                                  {**ev, **atk, **_attacked_evidence(clean_s, adv_s,
                                                                                     suite.skip_misclassified)})
            save_partial()

    # large-eps check
    if suite.large_eps > 0 and not done("check/large-eps"):
        m = min(suite.check_n, n)
        t0 = time.perf_counter()
        flags = _attacked_correct(model, x[:m], y[:m], clean[:m], suite.skip_misclassified, suite.large_eps,
                                  suite.large_eps / 4, [LARGE_EPS_STEPS], random_start=True, seed=suite.seed,
                                  batch_size=bs, stop_when_fooled=suite.stop_when_fooled)
        ev = {"eps": suite.large_eps, "alpha": suite.large_eps / 4, "steps": LARGE_EPS_STEPS, "random_start": True,
              "loss": "ce", "images": f"first {m} of {test_ds.describe()}",
              **({"stop_when_fooled": True} if suite.stop_when_fooled else {}),
              **_attacked_evidence(clean[:m], flags[LARGE_EPS_STEPS], suite.skip_misclassified)}
        results["check/large-eps"] = _entry(flags[LARGE_EPS_STEPS], time.perf_counter() - t0, "check", "pgd", ev)

    checks, doubts = judge(results, suite)
    result = {
        "run_id": run.id,
        "suite": suite.to_dict(),
        "suite_hash": suite.hash,
        "result_hash": path.stem.rsplit("-", 1)[-1],
        "version": __version__,
        "method": run.cfg.method,
        "dataset": run.cfg.dataset,
        "profile": run.cfg.profile,
        "test_data": test_ds.describe(),
        "test_sha1": test_sha1,
        "weights_sha256": _weights_of(run.dir, model),
        "n": n,
        "transfer_source": transfer_source,
        "results": results,
        "checks": checks,
        "doubts": doubts,
        # every process's time, an interrupted one's included (`spent_seconds` for older records)
        "seconds_total": round(seconds_earlier + time.perf_counter() - t_start, 2),
        "seconds_resumed": round(seconds_earlier, 2),
        "env": {"torch": torch.__version__, "device": str(device), "threads": torch.get_num_threads(),
                "fast_path": fast},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    _atomic_json(result, path)
    partial_path.unlink(missing_ok=True)
    return result


# --------------------------------------------------------------------------- masking checklist
def _acc_on(entry: dict, m: int) -> float:
    """Accuracy of an entry on its first m images."""
    f = correct_flags(entry)[:m]
    return float(f.mean()) if len(f) else float("nan")


def attack_family(entry: Mapping[str, Any]) -> tuple:
    """(loss, step size, random start) of a PGD/CW entry: its rows differ only in steps."""
    ev = entry["evidence"]
    return ev["loss"], ev["alpha"], ev["random_start"]


def masking_checks(results: Mapping[str, dict], suite: Suite) -> List[dict]:
    """The gradient-masking checklist (Athalye et al. 2018; Carlini et al. 2019). Every
    comparison allows `suite.tol` plus one image of the compared set (sampling slack):

    1. pgd_monotone: PGD/CW accuracy does not increase with more steps (same loss, step size
       and start); doubt on the later row.
       pgd_converged: the longest table row of a family is not clearly above a longer (check)
       row of that family on the same images ("verify that iterative attacks converge",
       Carlini et al. 2019, sec. 5.2): doubt on the table row when the one-sided 95% lower
       bound of the per-image fall (`stats.interval`) exceeds `tol`.
    2. large_eps: PGD at `large_eps` drives accuracy to ~0, an image counting as broken when
       a white-box attack at a smaller eps broke it; doubt on every white-box table row.
    3. transfer_vs_whitebox: transferred accuracy >= the same attack in white box; doubt on the
       white-box row.
    4. nattack_vs_whitebox: N-Attack accuracy >= the strongest white-box row on the same images;
       doubt on the strongest row of each white-box family (loss, step size, start: the most
       steps) that lies above N-Attack.
    5. autoattack_vs_pgd: AutoAttack >= strongest PGD/CW - aa_tol (else doubt as in 4), and
       autoattack_vs_pgd_not_weaker: AutoAttack <= strongest PGD/CW (else doubt on AutoAttack).
    6. clean_upper_bound: no attack raises accuracy above clean.
    """
    checks: List[dict] = []
    tol = suite.tol
    wb = {k: e for k, e in results.items() if e["attack"] in ("pgd", "cw") and not k.startswith(("shift-", "check/"))}
    wb_table = {k: e for k, e in wb.items() if e["role"] == "table"}

    def slack(n, t=tol):
        return t + 1.0 / max(int(n), 1)

    families: Dict[tuple, List[Tuple[int, str]]] = {}
    for k, e in wb.items():
        ev = e["evidence"]
        families.setdefault(attack_family(e), []).append((ev["steps"], k))
    for items in families.values():
        items.sort()
    finals = {max((s_k for s_k in items if s_k[1] in wb_table), default=(0, None))[1] for items in families.values()}
    finals.discard(None)

    # 1. monotone in steps
    compared = False
    for items in families.values():
        for (s0, k0), (s1, k1) in zip(items, items[1:]):
            compared = True
            m = min(wb[k0]["n"], wb[k1]["n"])  # a check row may cover only the first check_n images
            a0, a1 = _acc_on(wb[k0], m), _acc_on(wb[k1], m)
            lim = slack(m)
            on = "" if wb[k0]["n"] == wb[k1]["n"] else f" on the first {m} images"
            checks.append({"check": "pgd_monotone", "passed": a1 <= a0 + lim,
                           "detail": f"{k0} {a0:.4f} -> {k1} {a1:.4f}{on} (allowed rise {lim:.4f})",
                           "casts_doubt_on": [k1]})
    if not compared:
        checks.append({"check": "pgd_monotone", "passed": None,
                       "detail": "fewer than two step counts with the same loss, step size and start",
                       "casts_doubt_on": []})

    # 1b. converged: a longer attack of the family does not read clearly lower than the table's
    converged: List[dict] = []
    for items in families.values():
        table_rows = [sk for sk in items if sk[1] in wb_table]
        if not table_rows or items[-1][0] <= table_rows[-1][0]:
            continue
        k0, k1 = table_rows[-1][1], items[-1][1]
        m = min(wb[k0]["n"], wb[k1]["n"])
        f0, f1 = correct_flags(wb[k0])[:m], correct_flags(wb[k1])[:m]
        iv = stats.interval(f0.astype(float) - f1.astype(float), resolution=1.0 / m)
        ok = iv.lower is None or iv.lower <= tol
        on = "" if wb[k0]["n"] == wb[k1]["n"] else f" on the first {m} images"
        bound = f"{iv.lower:.4f}" if iv.lower is not None else "n/a"
        converged.append({"check": "pgd_converged", "passed": ok,
                          "detail": f"{k0} {f0.mean():.4f} -> {k1} {f1.mean():.4f}{on}: fall {iv.mean:.4f}, "
                                    f"one-sided 95% lower bound {bound} (allowed {tol:.4f})",
                          "casts_doubt_on": [] if ok else [k0]})
    checks += converged or [{"check": "pgd_converged", "passed": None,
                             "detail": "no attack longer than the table's of the same loss, step size and start",
                             "casts_doubt_on": []}]

    # 2. large eps: an image counts as broken at the large eps if any white-box attack within a
    # smaller eps broke it (that example lies in the larger ball too). Alone, the large-eps PGD
    # can fail where the table's attacks succeed: from a random start in a wide ball a confident
    # natural model's CE loss saturates (its gradient underflows) and sign steps stall.
    if "check/large-eps" in results:
        e = results["check/large-eps"]
        m, big = e["n"], e["evidence"]["eps"]
        survive = correct_flags(e).copy()
        inside = sorted(k for k, w in wb.items() if w["evidence"]["eps"] <= big and w["n"] >= m)
        for k in inside:
            survive &= correct_flags(wb[k])[:m]
        acc = float(survive.mean()) if m else float("nan")
        lim = slack(m)
        joint = (f"; {acc:.4f} counting the examples that {', '.join(inside)} found within a smaller eps"
                 if inside and acc < e["accuracy"] else "")
        checks.append({"check": "large_eps", "passed": acc <= lim,
                       "detail": f"PGD-{e['evidence']['steps']} at eps {big:.4g}: accuracy {e['accuracy']:.4f}"
                                 f"{joint} (must be <= {lim:.4f})",
                       "casts_doubt_on": sorted(wb_table)})
    else:
        checks.append({"check": "large_eps", "passed": None, "detail": "not run (large_eps = 0)",
                       "casts_doubt_on": []})

    # 3. transfer >= white box
    tkeys = [k for k in results if k.startswith("transfer/")]
    for tk in tkeys:
        wk = tk.split("/", 1)[1]
        a_t, a_w = results[tk]["accuracy"], results[wk]["accuracy"]
        lim = slack(results[tk]["n"])
        checks.append({"check": "transfer_vs_whitebox", "passed": a_t >= a_w - lim,
                       "detail": f"{tk} {a_t:.4f} vs {wk} {a_w:.4f} (allowed gap {lim:.4f})",
                       "casts_doubt_on": [wk]})
    if not tkeys:
        checks.append({"check": "transfer_vs_whitebox", "passed": None, "detail": "no transfer attack",
                       "casts_doubt_on": []})

    def vs_blackbox(name, key, below_tol, above_tol):
        e = results[key]
        m = min(e["n"], results["clean"]["n"])
        if not wb_table or m == 0:
            checks.append({"check": name, "passed": None, "detail": "no white-box rows", "casts_doubt_on": []})
            return
        accs = {k: _acc_on(w, m) for k, w in wb_table.items()}
        strongest = min(accs, key=accs.get)
        a_b = _acc_on(e, m)
        lim = slack(m, below_tol)
        ok = a_b >= accs[strongest] - lim
        doubt = sorted(k for k in finals if accs[k] > a_b + lim)
        checks.append({"check": name, "passed": ok,
                       "detail": f"{key} {a_b:.4f} vs strongest white box {strongest} {accs[strongest]:.4f} on the "
                                 f"first {m} images (allowed gap {lim:.4f})",
                       "casts_doubt_on": [] if ok else (doubt or [strongest])})
        if above_tol is not None:
            lim2 = slack(m, above_tol)
            ok2 = a_b <= accs[strongest] + lim2
            checks.append({"check": f"{name}_not_weaker", "passed": ok2,
                           "detail": f"{key} {a_b:.4f} vs strongest white box {strongest} {accs[strongest]:.4f} "
                                     f"(allowed excess {lim2:.4f})",
                           "casts_doubt_on": [] if ok2 else [key]})

    # 4. N-Attack >= white box
    if "nattack" in results:
        vs_blackbox("nattack_vs_whitebox", "nattack", tol, None)
    # 5. AutoAttack close to the strongest PGD/CW
    if "autoattack" in results:
        vs_blackbox("autoattack_vs_pgd", "autoattack", suite.aa_tol, tol)

    # 6. clean is an upper bound
    clean = results["clean"]
    bad = []
    for k, e in results.items():
        if k == "clean" or k.startswith("shift-") or e["attack"] == "clean":
            continue
        m = min(e["n"], clean["n"])
        if _acc_on(e, m) > _acc_on(clean, m) + slack(m):
            bad.append(k)
    checks.append({"check": "clean_upper_bound", "passed": not bad,
                   "detail": "every attack's accuracy <= clean accuracy on the same images"
                             + (f"; violated by {bad}" if bad else ""), "casts_doubt_on": bad})
    return checks


# --------------------------------------------------------------------------- presentation
def summary_rows(result: Mapping[str, Any]) -> List[dict]:
    """One row per result entry: key, accuracy (%), n, seconds, role, and the failed checks
    casting doubt on it."""
    rows = []
    for k, e in result["results"].items():
        rows.append({"attack": k, "accuracy": round(100 * e["accuracy"], 2), "n": e["n"],
                     "seconds": e["seconds"], "role": e["role"], "doubts": result["doubts"].get(k, [])})
    return rows


def format_result(result: Mapping[str, Any]) -> str:
    """Plain-text table; a failed masking check is printed next to the number it casts doubt on."""
    lines = [f"{result['run_id']}  suite {result['suite']['name']} ({result['result_hash']}), {result['test_data']}"]
    for r in summary_rows(result):
        flag = ("  <- doubt: " + ", ".join(r["doubts"])) if r["doubts"] else ""
        role = " (check)" if r["role"] == "check" else ""
        lines.append(f"  {r['attack']:<28} {r['accuracy']:6.2f}%  n={r['n']:<5} {r['seconds']:8.1f} s{role}{flag}")
    failed = [c for c in result["checks"] if c["passed"] is False]
    lines.append(f"  masking checklist: {sum(c['passed'] is True for c in result['checks'])} passed, "
                 f"{len(failed)} failed, {sum(c['passed'] is None for c in result['checks'])} n/a")
    for c in failed:
        lines.append(f"    FAILED {c['check']}: {c['detail']}")
    return "\n".join(lines)
