"""robustbook.stats against known answers (issue 12): t quantiles, intervals at n = 2 and with
zero spread, Holm, TOST, detectable effects, McNemar, bootstrap, transfer units, and the
false-contradiction rate of a 26-comparison claim with no true effect (simulated)."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from robustbook import stats


def test_t_quantiles_match_tables():
    # Student's t, one-sided 95%: df 1 -> 6.3138, df 2 -> 2.9200, df 3 -> 2.3534 (standard tables)
    assert stats.t_quantile(0.95, 1) == pytest.approx(6.313752, abs=1e-5)
    assert stats.t_quantile(0.95, 2) == pytest.approx(2.919986, abs=1e-5)
    assert stats.t_quantile(0.95, 3) == pytest.approx(2.353363, abs=1e-5)
    with pytest.raises(ValueError):
        stats.t_quantile(0.95, 0)


def test_interval_known_values_n3():
    iv = stats.interval([1.0, 2.0, 3.0])
    assert (iv.n, iv.df) == (3, 2)
    assert iv.mean == pytest.approx(2.0) and iv.sd == pytest.approx(1.0)
    assert iv.se == pytest.approx(1 / math.sqrt(3))
    assert iv.lower == pytest.approx(2.0 - 2.919986 / math.sqrt(3), abs=1e-5)
    assert iv.upper == pytest.approx(2.0 + 2.919986 / math.sqrt(3), abs=1e-5)


def test_n2_uses_one_degree_of_freedom():
    iv = stats.interval([1.0, 3.0])
    assert iv.df == 1 and iv.se == pytest.approx(1.0)
    assert iv.lower == pytest.approx(2.0 - 6.313752, abs=1e-5)  # a normal z would give 2 - 1.645
    v = stats.judge([iv], iv)
    assert v.verdict != "supported"


def test_zero_spread_is_not_infinite_evidence():
    with pytest.raises(ValueError):
        stats.interval([1.0, 1.0, 1.0])  # no resolution given: refuse instead of dividing by zero
    iv = stats.interval([0.1, 0.1, 0.1], resolution=0.1)  # one test image in 1000 = 0.1 point
    assert iv.sd == 0 and iv.sd_used == 0.1
    assert math.isfinite(iv.lower) and iv.lower == pytest.approx(0.1 - 2.919986 * 0.1 / math.sqrt(3), abs=1e-6)
    assert stats.judge([iv], iv).verdict != "supported"  # lower bound < 0: one image's worth of evidence
    assert stats.p_greater(iv) > 0.05


def test_one_seed_and_no_seed():
    assert stats.judge([stats.interval([2.0])], stats.interval([2.0])).verdict == "not enough seeds"
    assert stats.judge([stats.interval([])], stats.interval([])).verdict == "no runs yet"


def test_paired_uses_shared_units_only():
    units, d = stats.paired({0: 5.0, 1: 6.0, 2: 7.0}, {1: 1.0, 2: 2.0, 3: 9.0})
    assert units == [1, 2] and d.tolist() == [5.0, 5.0]


def test_holm_known_values():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5]) == [0.5]
    assert stats.holm([0.2, 0.9]) == pytest.approx([0.4, 0.9])
    with pytest.raises(ValueError):
        stats.holm([1.5])


def test_tost_equivalence_and_power():
    tight = stats.interval([0.1, -0.1, 0.0, 0.05], resolution=0.01)
    t = stats.tost(tight, margin=1.0)
    assert t["equivalent"] and t["detectable"]
    wide = stats.interval([3.0, -3.0, 0.5], resolution=0.01)
    t = stats.tost(wide, margin=1.0)
    assert not t["equivalent"] and not t["detectable"]
    # the TOST p equals the larger of the two one-sided t p-values
    d = np.array([0.3, 0.5, 0.2])
    iv = stats.interval(d)
    se = d.std(ddof=1) / math.sqrt(3)
    want = max(sps.t.sf((d.mean() + 1) / se, 2), sps.t.cdf((d.mean() - 1) / se, 2))
    assert stats.tost(iv, 1.0)["p"] == pytest.approx(want)
    v = stats.judge([tight], tight, kind="similar", margin=1.0)
    assert v.verdict == "supported"
    far = stats.interval([5.0, 5.2, 4.9, 5.1])
    assert stats.judge([far], far, kind="similar", margin=1.0).verdict == "contradicted"
    assert stats.judge([wide], wide, kind="similar", margin=1.0).verdict == "underpowered"


def test_detectable_effect_has_stated_power():
    sd, n = 2.0, 3
    delta = stats.detectable_effect(sd, n)
    crit = sps.t.ppf(0.95, n - 1)
    assert sps.nct.sf(crit, n - 1, delta * math.sqrt(n) / sd) == pytest.approx(0.8, abs=1e-6)
    # large n: close to the normal approximation (z_.95 + z_.8) sd / sqrt(n)
    big = stats.detectable_effect(1.0, 400)
    assert big == pytest.approx((1.644854 + 0.841621) / 20, rel=0.01)
    assert stats.detectable_effect(1.0, 1) is None


def test_supported_contradicted_underpowered():
    good = stats.interval([2.0, 2.4, 1.8, 2.2])
    assert stats.judge([good, good], good).verdict == "supported"
    # size: the lower bounds must clear the claimed size
    assert stats.judge([good], good, kind="size", size=3.0).verdict != "supported"
    bad = stats.interval([-2.0, -2.4, -1.8, -2.2])
    v = stats.judge([good, bad], bad)
    assert v.verdict == "contradicted" and v.primary_p_holm < 0.05
    noisy = stats.interval([3.0, -2.0, 1.0])
    v = stats.judge([noisy], noisy, claimed_effect=0.5)
    assert v.verdict == "underpowered" and v.detectable > 0.5
    assert "above the primary's upper bound" not in v.detail  # 0.5 lies inside its interval
    # a small, steady difference: the paper's +4.5 is ruled out though the direction is not shown
    small = stats.interval([0.0, -1.2, 0.5, 0.3, 0.1])
    v = stats.judge([small], small, claimed_effect=4.53)
    assert v.verdict in ("inconclusive", "underpowered") and small.upper < 4.53
    assert f"claimed effect +4.53 is above the primary's upper bound {small.upper:+.2f}" in v.detail


def test_some_kind_uses_bonferroni():
    small = stats.interval([0.1, 0.2, 0.15])
    big = stats.interval([6.0, 6.1, 5.9])
    assert stats.judge([small, big], small, kind="some", size=5.0).verdict == "supported"
    assert stats.judge([small, small], small, kind="some", size=5.0).verdict != "supported"


def _simulate(n_sims, seeds=3, rows=4, comparisons=26, seed=0):
    """Per-seed values of `rows` rows over `comparisons` columns with a shared seed effect and
    no true difference between rows; returns (contradicted rate of judge, naive rate)."""
    rng = np.random.default_rng(seed)
    pairs = [(a, b) for a in range(rows) for b in range(rows) if a != b]
    contradicted = naive = 0
    for _ in range(n_sims):
        seed_eff = rng.normal(0, 1.0, size=(seeds, 1, 1))
        vals = 40 + seed_eff + rng.normal(0, 0.7, size=(seeds, rows, comparisons // 2 + 1))
        ivs, naive_hit = [], False
        for k in range(comparisons):
            a, b = pairs[k % len(pairs)]
            col = k % vals.shape[2]
            d = vals[:, a, col] - vals[:, b, col]
            ivs.append(stats.interval(d, resolution=0.1))
            xa, xb = vals[:, a, col], vals[:, b, col]
            z = (xa.mean() - xb.mean()) / math.sqrt(xa.var(ddof=1) / seeds + xb.var(ddof=1) / seeds)
            naive_hit |= z < -2
        prim = stats.interval(np.mean([vals[:, 1, c] - vals[:, 0, c] for c in range(vals.shape[2])], axis=0),
                              resolution=0.1)
        contradicted += stats.judge(ivs, prim, with_detectable=False).verdict == "contradicted"
        naive += naive_hit
    return contradicted / n_sims, naive / n_sims


def test_null_claim_with_26_comparisons_is_rarely_contradicted():
    n = 1000
    rate, naive = _simulate(n)
    # the stated rate is alpha = 0.05; allow 2 binomial standard errors of Monte Carlo noise
    assert rate <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / n)
    # the old rule (any of 26 normal z < -2 with 3 seeds) exceeds the rate by far: the test can fail
    assert naive > 0.2


def test_mcnemar_exact():
    a = np.array([1] * 8 + [0] * 2 + [1] * 5 + [0] * 5, dtype=bool)
    b = np.array([0] * 8 + [1] * 2 + [1] * 5 + [0] * 5, dtype=bool)
    r = stats.mcnemar(a, b)
    assert (r["n10"], r["n01"]) == (8, 2)
    assert r["p_greater"] == pytest.approx(56 / 1024)  # P(X >= 8), X ~ Bin(10, 1/2)
    assert r["diff"] == pytest.approx(100 * 6 / 20)
    with pytest.raises(ValueError):
        stats.mcnemar(a, b[:-1])


def test_bootstrap_known_cases():
    ones, zeros = np.ones(50, bool), np.zeros(50, bool)
    r = stats.bootstrap_diff({0: [(ones, zeros)], 1: [(ones, zeros)]}, n_boot=200)
    assert r["mean"] == 100 and r["lower"] == 100
    rng = np.random.default_rng(1)
    pairs = {s: [(rng.random(400) < 0.6, rng.random(400) < 0.5)] for s in range(3)}
    r1 = stats.bootstrap_diff(pairs, n_boot=500, seed=3)
    r2 = stats.bootstrap_diff(pairs, n_boot=500, seed=3)
    assert r1 == r2 and r1["lower"] < r1["mean"] < r1["upper"]
    assert 3 < r1["mean"] < 17
    assert stats.bootstrap_diff({}, n_boot=200) is None


def test_transfer_pairs_are_one_unit():
    # seed-pair design (0 <-> 1): the two directions of one pair are one unit
    u = stats.transfer_units({0: 50.0, 1: 52.0, 2: 40.0, 3: 42.0}, {0: 1, 1: 0, 2: 3, 3: 2})
    assert u == {"pair0-1": 51.0, "pair2-3": 41.0}
    # cyclic design (s attacked from (s + 1) mod 3): three distinct pairs
    u = stats.transfer_units({0: 1.0, 1: 2.0, 2: 3.0}, {0: 1, 1: 2, 2: 0})
    assert sorted(u) == ["pair0-1", "pair0-2", "pair1-2"]
    assert stats.transfer_units({0: 1.0}, {}) == {"t0": 1.0}


def test_p_within_spread_matches_the_t_law_and_a_simulation():
    # 2 and 2 seeds: |T_1| < 1, the Cauchy's quartiles: exactly one half
    assert stats.p_within_spread(2, 2) == pytest.approx(0.5)
    assert stats.p_within_spread(1, 3) is None
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200_000, 3)), rng.normal(size=(200_000, 3))
    simulated = float(np.mean(np.abs(b.mean(1) - a.mean(1)) < a.std(1, ddof=1)))
    assert stats.p_within_spread(3, 3) == pytest.approx(simulated, abs=0.005)
    assert stats.p_within_spread(10, 10) > stats.p_within_spread(3, 3)
