"""The statistics of the claims ledger (issue 12): paired, seed-level t intervals, Holm
correction, two one-sided tests, detectable effects, and image-level checks.

Rules (issue 12, "The statistics"):

* **Paired by seed.** A seed fixes data order, initialisation, attack seeds and test images
  for every row, so two rows are compared on the seeds they share: one difference per unit.
  A black-box (transfer) value is a *pair* of models, target and source; values whose
  unordered pairs coincide (seed s^1 partners: 0<-1 and 1<-0) are one unit and are averaged
  (`transfer_units`). Under the cyclic design (seed s attacked from (s+1) mod 3) the three
  pairs are distinct units; they share one model each, in different roles (target in one,
  source in the other), which leaves them uncorrelated when a model's effect as a target and
  as a source are independent -- an assumption the ledger states next to such numbers.
* **One-sided t intervals with n-1 degrees of freedom** (`scipy.stats.t`), never a normal z.
  The seed spread is floored at the measurement's resolution (`resolution`, e.g. one test
  image = 100/m points), so a zero spread is not infinite evidence.
* **Supported**: every comparison's one-sided 95% lower bound above zero (or above the
  claimed size). Requiring *every* comparison is an intersection-union test: it keeps the
  level without a multiplicity correction.
* **Contradicted**: the claim's primary contrast below zero (below the claimed size is not
  enough) at level alpha after Holm correction over the claim's comparisons and the primary.
* **Similar / unchanged**: two one-sided tests (TOST) with a stated margin.
* Otherwise **inconclusive**, or **underpowered** where the smallest effect the seed spread
  could detect (one-sided alpha, power 0.8, noncentral t) exceeds the claimed effect. Either
  one's detail says when the claimed effect lies above the primary's one-sided upper bound
  (an effect that exists but is smaller than the paper's, e.g. at a reduced profile).

Image sampling: `mcnemar` (exact, on one seed's paired per-image flags) and
`bootstrap_diff` (seeds, then images within each seed, resampled) give the image-level view
shown beside the seed-level interval.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Dict, Hashable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from scipy import optimize, special, stats

ALPHA = 0.05
POWER = 0.8

__all__ = ["ALPHA", "POWER", "Interval", "t_quantile", "paired", "interval", "p_greater", "holm",
           "tost", "detectable_effect", "p_within_spread", "transfer_units", "mcnemar", "bootstrap_diff", "judge", "Verdict"]


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha!r}")


def t_quantile(p: float, df: int) -> float:
    """The p-quantile of Student's t with df degrees of freedom (scipy.stats.t.ppf)."""
    if df < 1:
        raise ValueError(f"t quantile needs df >= 1, got {df}")
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1), got {p!r}")
    return float(special.stdtrit(df, p))  # = scipy.stats.t.ppf(p, df), without the distribution overhead


def paired(a: Mapping[Hashable, float], b: Mapping[Hashable, float]) -> Tuple[List[Hashable], np.ndarray]:
    """Units present in both `a` and `b` (sorted) and the differences a - b on them."""
    if not isinstance(a, Mapping) or not isinstance(b, Mapping):
        raise TypeError("paired() takes two {unit: value} mappings")
    units = sorted(set(a) & set(b), key=str)
    return units, np.array([float(a[u]) - float(b[u]) for u in units], dtype=float)


@dataclass(frozen=True)
class Interval:
    """Seed-level summary of per-unit differences."""

    n: int
    mean: Optional[float]
    sd: Optional[float]
    """Sample standard deviation (ddof 1) as observed."""
    sd_used: Optional[float]
    """max(sd, resolution): the spread the interval uses (zero spread is not infinite evidence)."""
    se: Optional[float]
    df: Optional[int]
    lower: Optional[float]
    """One-sided (1 - alpha) lower bound of the mean difference."""
    upper: Optional[float]
    """One-sided (1 - alpha) upper bound."""
    alpha: float

    def to_dict(self) -> dict:
        return asdict(self)


def _clean(diffs: Sequence[float]) -> np.ndarray:
    d = np.asarray(list(diffs), dtype=float)
    if d.ndim != 1:
        raise ValueError("differences must be a flat sequence")
    if not np.all(np.isfinite(d)):
        raise ValueError(f"differences must be finite numbers, got {d.tolist()}")
    return d


def interval(diffs: Sequence[float], alpha: float = ALPHA, resolution: float = 0.0) -> Interval:
    """One-sided t bounds (n-1 df) of the mean of per-unit differences.

    `resolution`: the smallest step the measurement can take (e.g. 100/m points for an
    accuracy on m images); the spread used is max(sd, resolution). n < 2: mean only."""
    _check_alpha(alpha)
    if resolution < 0:
        raise ValueError(f"resolution must be >= 0, got {resolution!r}")
    d = _clean(diffs)
    n = len(d)
    if n == 0:
        return Interval(0, None, None, None, None, None, None, None, alpha)
    mean = float(d.mean())
    if n == 1:
        return Interval(1, mean, None, None, None, None, None, None, alpha)
    sd = float(d.std(ddof=1))
    if sd <= 1e-9 * (1.0 + abs(mean)):  # equal values up to float rounding: a zero spread
        sd = 0.0
    sd_used = max(sd, resolution)
    se = sd_used / math.sqrt(n)
    if se == 0:
        raise ValueError("zero spread with resolution 0: pass the measurement's resolution")
    q = t_quantile(1 - alpha, n - 1)
    return Interval(n, mean, sd, sd_used, se, n - 1, mean - q * se, mean + q * se, alpha)


def p_greater(iv: Interval, delta: float = 0.0) -> Optional[float]:
    """One-sided t p-value of H0: mean <= delta against mean > delta (None below n = 2)."""
    if iv.se is None:
        return None
    return float(special.stdtr(iv.df, -(iv.mean - delta) / iv.se))  # t.sf


def p_less(iv: Interval, delta: float = 0.0) -> Optional[float]:
    """One-sided t p-value of H0: mean >= delta against mean < delta (None below n = 2)."""
    if iv.se is None:
        return None
    return float(special.stdtr(iv.df, (iv.mean - delta) / iv.se))  # t.cdf


def holm(pvalues: Sequence[float]) -> List[float]:
    """Holm step-down adjusted p-values (same order as given): p_(i) * (m - i + 1), made
    monotone, capped at 1. A hypothesis is rejected at level alpha when its adjusted p < alpha."""
    p = np.asarray(list(pvalues), dtype=float)
    if p.size == 0:
        return []
    if np.any((p < 0) | (p > 1)) or not np.all(np.isfinite(p)):
        raise ValueError(f"p-values must lie in [0, 1], got {p.tolist()}")
    m = len(p)
    order = np.argsort(p, kind="stable")
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adj[i] = running
    return adj.tolist()


def tost(iv: Interval, margin: float) -> Optional[dict]:
    """Two one-sided tests of |mean| < margin: p = max(p(mean > -margin), p(mean < margin)).
    Equivalent at alpha when p < alpha, i.e. the (1 - 2 alpha) two-sided interval lies inside
    (-margin, margin). `detectable`: False when even a zero mean could not show equivalence
    (t * se >= margin: the seeds are too few or too spread for this margin)."""
    if margin <= 0:
        raise ValueError(f"TOST margin must be > 0, got {margin!r}")
    if iv.se is None:
        return None
    p_low = p_greater(iv, -margin)
    p_high = p_less(iv, margin)
    q = t_quantile(1 - iv.alpha, iv.df)
    return {"p": max(p_low, p_high), "p_lower": p_low, "p_upper": p_high, "margin": margin,
            "equivalent": max(p_low, p_high) < iv.alpha, "detectable": q * iv.se < margin,
            "half_width": q * iv.se}


def detectable_effect(sd: float, n: int, alpha: float = ALPHA, power: float = POWER) -> Optional[float]:
    """Smallest true mean difference a one-sided paired t test at `alpha` detects with
    probability `power` given n units of spread `sd` (noncentral t, exact). None for n < 2."""
    _check_alpha(alpha)
    if n < 2:
        return None
    if sd < 0 or not math.isfinite(sd):
        raise ValueError(f"sd must be a finite number >= 0, got {sd!r}")
    if sd == 0:
        return 0.0
    df = n - 1
    crit = stats.t.ppf(1 - alpha, df)

    def gap(delta):
        return stats.nct.sf(crit, df, delta * math.sqrt(n) / sd) - power

    hi = sd
    while gap(hi) < 0:
        hi *= 2
    return float(optimize.brentq(gap, 0.0, hi, xtol=1e-10 * sd))


def p_within_spread(n_ref: int, n_other: int) -> Optional[float]:
    """P(|mean_other - mean_ref| < s_ref) when both rows measure the same thing with the same
    seed noise (normal, equal sd), s_ref the reference row's sample sd over its n_ref seeds:
    the difference of means is sd * sqrt(1/n_ref + 1/n_other) * Z and s_ref is sd * chi/sqrt(df),
    so the event is |T_(n_ref-1)| < 1/sqrt(1/n_ref + 1/n_other). With 3 and 3 seeds it is 0.65:
    a row that changes nothing still "moves more than the seed spread" in a third of its cells.
    None below 2 seeds on either side."""
    if n_ref < 2 or n_other < 1:
        return None
    c = 1.0 / math.sqrt(1.0 / n_ref + 1.0 / n_other)
    return float(2.0 * special.stdtr(n_ref - 1, c) - 1.0)


def transfer_units(values: Mapping[int, float], sources: Mapping[int, Optional[int]]) -> Dict[str, float]:
    """Black-box values {target seed: value} with their source seeds -> {unit: value}: one unit
    per unordered {target, source} pair (the mean when both directions exist, e.g. seed pairs
    0<-1 and 1<-0). A value without a known source is its own unit 't<seed>'."""
    groups: Dict[str, List[float]] = {}
    for seed, v in values.items():
        src = sources.get(seed)
        key = f"t{seed}" if src is None else "pair{}-{}".format(*sorted((int(seed), int(src))))
        groups.setdefault(key, []).append(float(v))
    return {k: float(np.mean(v)) for k, v in groups.items()}


def mcnemar(a: Sequence[bool], b: Sequence[bool]) -> dict:
    """Exact McNemar test on one seed's paired per-image flags (same images for both rows):
    n10 = images A gets right and B wrong, n01 the reverse; one-sided p of A > B =
    P(X >= n10), X ~ Binomial(n10 + n01, 1/2)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"McNemar needs two flag vectors over the same images, got {a.shape} and {b.shape}")
    n10 = int(np.sum(a & ~b))
    n01 = int(np.sum(~a & b))
    n = n10 + n01
    p = float(stats.binom.sf(n10 - 1, n, 0.5)) if n else 1.0
    p_less = float(stats.binom.cdf(n10, n, 0.5)) if n else 1.0
    return {"n10": n10, "n01": n01, "images": int(a.size), "diff": 100.0 * (n10 - n01) / max(a.size, 1),
            "p_greater": p, "p_less": p_less}


def bootstrap_diff(pairs: Mapping[Hashable, Sequence[Tuple[Sequence[bool], Sequence[bool]]]],
                   n_boot: int = 2000, alpha: float = ALPHA, seed: int = 0) -> Optional[dict]:
    """Two-level bootstrap of an accuracy difference in points: resample units (seeds or
    transfer pairs) with replacement, then images within each drawn value (paired: the same
    image indices for both rows). `pairs`: {unit: [(flags_a, flags_b), ...]} (one entry per
    value of the unit). Returns the mean and the one-sided (1 - alpha) lower / upper bounds."""
    _check_alpha(alpha)
    if n_boot < 100:
        raise ValueError(f"n_boot must be >= 100, got {n_boot}")
    units = [u for u in pairs if pairs[u]]
    if not units:
        return None
    rng = np.random.default_rng(seed)
    per_unit = []
    for u in units:
        vals = []
        for fa, fb in pairs[u]:
            fa, fb = np.asarray(fa, dtype=float), np.asarray(fb, dtype=float)
            if fa.shape != fb.shape or fa.ndim != 1 or fa.size == 0:
                raise ValueError(f"unit {u!r}: flags must be two non-empty vectors over the same images")
            vals.append(fa - fb)
        per_unit.append(vals)
    point = float(np.mean([np.mean([v.mean() for v in vals]) for vals in per_unit])) * 100
    stats_ = np.empty(n_boot)
    k = len(per_unit)
    for i in range(n_boot):
        pick = rng.integers(0, k, size=k)
        means = []
        for j in pick:
            vals = per_unit[j]
            means.append(np.mean([v[rng.integers(0, v.size, size=v.size)].mean() for v in vals]))
        stats_[i] = np.mean(means) * 100
    return {"mean": point, "lower": float(np.quantile(stats_, alpha)), "upper": float(np.quantile(stats_, 1 - alpha)),
            "units": k, "n_boot": n_boot, "alpha": alpha}


# --------------------------------------------------------------------------- verdicts
VERDICTS = ("supported", "contradicted", "inconclusive", "underpowered", "not enough seeds", "no runs yet")


@dataclass(frozen=True)
class Verdict:
    verdict: str
    detail: str
    detectable: Optional[float] = None
    """Smallest effect (points) the primary contrast's seed spread could detect (alpha, power 0.8)."""
    primary_p_holm: Optional[float] = None

    def to_dict(self) -> dict:
        return asdict(self)


def judge(comparisons: Sequence[Interval], primary: Interval, kind: str = "direction", size: float = 0.0,
          margin: Optional[float] = None, claimed_effect: Optional[float] = None,
          alpha: float = ALPHA, with_detectable: bool = True) -> Verdict:
    """The verdict of one claim from its comparisons' intervals (each a difference oriented so
    the claim says it is positive) and its primary contrast (module docstring).

    kind 'direction' / 'size' / 'ranking' / 'trend': supported when every lower bound > size
    (0 for a direction); 'some': supported when at least one comparison's lower bound at
    level alpha / m (Bonferroni) exceeds `size`; 'similar': TOST with `margin` on every
    comparison. `claimed_effect`: the effect the claim states (the paper's own primary
    contrast, or the size), used for 'underpowered'. `with_detectable=False` skips computing
    the detectable effect where no claimed effect needs it (simulations)."""
    _check_alpha(alpha)
    if kind not in ("direction", "size", "ranking", "trend", "some", "similar"):
        raise ValueError(f"unknown claim kind {kind!r}")
    if not comparisons:
        raise ValueError("a claim needs at least one comparison")
    if any(c.n == 0 for c in comparisons) or primary.n == 0:
        return Verdict("no runs yet", "no shared seeds for at least one comparison")
    if any(c.se is None for c in comparisons) or primary.se is None:
        return Verdict("not enough seeds", f"fewer than 2 shared seeds (n = {min(c.n for c in comparisons)})")
    m = len(comparisons)
    effect = claimed_effect if claimed_effect is not None else (size if size > 0 else None)
    need = with_detectable or (effect is not None and kind != "similar")
    det = detectable_effect(primary.sd_used, primary.n, alpha) if need else None
    if kind == "similar":
        if margin is None:
            raise ValueError("a 'similar' claim needs a margin")
        tests = [tost(c, margin) for c in comparisons]
        if all(t["equivalent"] for t in tests):
            return Verdict("supported", f"all {m} differences within +-{margin:g} (TOST, alpha {alpha:g})", det)
        # contradicted: the primary difference outside the margin, Holm over comparisons + primary
        p_out = [min(p_greater(c, margin), p_less(c, -margin)) * 2 for c in comparisons]
        p_prim = min(p_greater(primary, margin), p_less(primary, -margin)) * 2
        adj = holm([min(1.0, p) for p in p_out] + [min(1.0, p_prim)])
        if adj[-1] < alpha:
            return Verdict("contradicted", f"primary difference outside +-{margin:g} (Holm p = {adj[-1]:.3g})", det,
                           adj[-1])
        if not tost(primary, margin)["detectable"]:
            hw = tost(primary, margin)["half_width"]
            return Verdict("underpowered", f"interval half-width {hw:.2f} >= margin {margin:g}: equivalence "
                                           f"cannot be shown with these seeds", det, adj[-1])
        return Verdict("inconclusive", "not every difference shown within the margin", det, adj[-1])
    if kind == "some":
        level = alpha / m
        best = max(comparisons, key=lambda c: c.mean - t_quantile(1 - level, c.df) * c.se)
        lower = best.mean - t_quantile(1 - level, best.df) * best.se
        if lower > size:
            return Verdict("supported", f"one comparison's lower bound {lower:.2f} > {size:g} at level alpha/{m}", det)
    elif all(c.lower > size for c in comparisons):
        return Verdict("supported", f"every one of {m} lower bounds > {size:g}", det)
    p_comp = [p_less(c, 0.0) for c in comparisons]
    adj = holm(p_comp + [p_less(primary, 0.0)])
    if adj[-1] < alpha:
        return Verdict("contradicted", f"primary contrast below 0 (Holm-adjusted p = {adj[-1]:.3g} over {m + 1} "
                                       f"tests)", det, adj[-1])
    # neither shown nor refuted; say so when the claimed effect itself is ruled out
    below = (f"; the claimed effect {effect:+.2f} is above the primary's upper bound {primary.upper:+.2f}"
             if effect is not None and effect > 0 and primary.upper is not None and primary.upper < effect else "")
    if effect is not None and det is not None and det > abs(effect):
        return Verdict("underpowered", f"detectable effect {det:.2f} > claimed {abs(effect):.2f}" + below, det, adj[-1])
    n_ok = sum(c.lower > size for c in comparisons)
    return Verdict("inconclusive", f"{n_ok} of {m} lower bounds > {size:g}; primary not below 0" + below, det,
                   adj[-1])
