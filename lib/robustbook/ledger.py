"""The claims ledger (issue 12): every quantitative claim of the three papers, from
`data/claims.yaml`, judged twice -- against the paper's own transcribed numbers
(`data/paper/*.json`) and against our stored runs -- with the statistics of
`robustbook.stats` (paired by seed, one-sided t intervals, Holm, TOST).

    from robustbook import ledger
    records = ledger.build("cpu")            # one record per claim (reads stored records only)
    ledger.counts_frame(records)             # claims per paper and verdict
    ledger.claims_for("fpr_table2")          # ids of the claims a table's section links to

Judging against the paper's numbers (no uncertainty: they are single printed values):
*supported* when every comparison clears the claim's threshold (0, the size, or the TOST
margin), *not supported* when the primary contrast does not, *partly supported* otherwise;
*no numbers printed* for figure claims. Against our runs: `stats.judge` (supported /
contradicted / inconclusive / underpowered / not enough seeds / no runs yet), *not testable
here* (CIFAR-100, STL-10, WRNs, other papers' rows) and *not set up* (testable, but no
experiment measures it yet). A verdict is about the profile it was computed on.
"""

from __future__ import annotations

import copy
import functools

import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import yaml

from . import paper as paper_mod
from . import presets
from . import stats
from .data import REPO_ROOT

CLAIMS_PATH = REPO_ROOT / "data" / "claims.yaml"
PAPERS_DIR = REPO_ROOT.parent / "shared" / "papers"
PAPER_NAMES = ("FP&R", "FP&R (IJCAI)", "AELF", "RLFAT")
KINDS = ("direction", "size", "some", "similar", "ranking", "trend")
TESTABLE = ("yes", "reduced", "no")
PSEUDO_TABLES = ("figure", "derived")
"""Comparison tables without transcribed numbers: a figure, or values derived in the entry."""

__all__ = ["load_claims", "expand", "judge_paper", "judge_ours", "build", "claims_for", "table_claims",
           "counts_frame", "claims_frame", "METRICS", "CLAIMS_PATH"]


class ClaimError(ValueError):
    """A malformed entry of data/claims.yaml."""


# --------------------------------------------------------------------------- loading
_REQUIRED = ("id", "paper", "file", "line", "sentence", "evidence", "dataset", "kind", "compare", "testable", "why")
_OPTIONAL = ("also", "size", "margin", "primary", "ours", "measure", "paper_values", "paper_values_note")


def _check(c: Mapping[str, Any], i: int, lines_of) -> None:
    def bad(msg):
        return ClaimError(f"data/claims.yaml entry {i} ({c.get('id', '?')}): {msg}")

    missing = [k for k in _REQUIRED if k not in c]
    if missing:
        raise bad(f"missing fields {missing}")
    extra = set(c) - set(_REQUIRED) - set(_OPTIONAL)
    if extra:
        raise bad(f"unknown fields {sorted(extra)}")
    if c["paper"] not in PAPER_NAMES:
        raise bad(f"paper {c['paper']!r} not one of {PAPER_NAMES}")
    if c["kind"] not in KINDS:
        raise bad(f"kind {c['kind']!r} not one of {KINDS}")
    if c["testable"] not in TESTABLE:
        raise bad(f"testable {c['testable']!r} not one of {TESTABLE}")
    if c["kind"] in ("size", "some") and not isinstance(c.get("size"), (int, float)):
        raise bad("a size / some claim needs a numeric size")
    if c["kind"] == "similar" and not (isinstance(c.get("margin"), (int, float)) and c["margin"] > 0):
        raise bad("a similar claim needs a margin > 0")
    if not isinstance(c["compare"], list) or not c["compare"]:
        raise bad("compare must be a non-empty list")
    n = lines_of(c["file"])
    if n is not None:
        for ln in [c["line"]] + list(c.get("also", [])):
            if not isinstance(ln, int) or not 1 <= ln <= n:
                raise bad(f"line {ln!r} outside {c['file']} (1..{n})")
    if "ours" in c and c["testable"] == "no":
        raise bad("an entry marked testable: no cannot name runs (ours)")


@lru_cache(maxsize=None)
def _paper_lines(file: str) -> Optional[Tuple[str, ...]]:
    path = PAPERS_DIR / file
    return tuple(path.read_text().split("\n")) if path.exists() else None


def paper_line(file: str, line: int) -> Optional[str]:
    """Line `line` (1-based) of ../shared/papers/<file>, or None when the papers are absent."""
    lines = _paper_lines(file)
    return None if lines is None else lines[line - 1]


def load_claims(path: Optional[Path] = None) -> List[Dict[str, Any]]:
    """The entries of data/claims.yaml, validated (ClaimError names the entry and the field).
    Parsed once per file version (path, size, modification time); a deep copy each call."""
    path = Path(path or CLAIMS_PATH)
    st = path.stat()
    return copy.deepcopy(_load_claims(str(path), st.st_size, st.st_mtime_ns))


@functools.lru_cache(maxsize=4)
def _load_claims(path_str: str, size: int, mtime_ns: int) -> List[Dict[str, Any]]:
    path = Path(path_str)
    doc = yaml.safe_load(path.read_text())
    if not isinstance(doc, dict) or not isinstance(doc.get("claims"), list):
        raise ClaimError(f"{path}: expected a mapping with a 'claims' list")
    out, seen = [], set()
    for i, c in enumerate(doc["claims"]):
        if not isinstance(c, dict):
            raise ClaimError(f"{path} entry {i}: not a mapping")
        _check(c, i, lambda f: None if _paper_lines(f) is None else len(_paper_lines(f)))
        if c["id"] in seen:
            raise ClaimError(f"{path}: duplicate id {c['id']!r}")
        seen.add(c["id"])
        out.append(c)
    return out


# --------------------------------------------------------------------------- comparisons
def _as_list(x) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def expand(claim: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """The claim's comparisons as linear contrasts the claim says are positive:
    [{'name', 'column', 'terms': [(coef, table, row, column)]}]; a constant is (coef, None, value, None)."""
    out = []
    for c in claim["compare"]:
        if "terms" in c:
            terms = [(float(k), t, r, col) if r != "const" else (float(k), None, 1.0, None)
                     for k, t, r, col in c["terms"]]
            out.append({"name": c.get("name", "contrast"), "column": None, "terms": terms})
            continue
        th, tl = c.get("high_table", c.get("table")), c.get("low_table", c.get("table"))
        if th is None or tl is None:
            raise ClaimError(f"{claim['id']}: a comparison needs table (or high_table and low_table)")
        for hi in _as_list(c["high"]):
            for lo in _as_list(c["low"]):
                for col in _as_list(c["columns"]):
                    def term(coef, table, row):
                        if isinstance(row, (int, float)) and not isinstance(row, bool):
                            return (coef, None, float(row), None)
                        return (coef, table, str(row), col)
                    tag = "" if th == tl else f" ({th} vs {tl})"
                    out.append({"name": f"{hi} > {lo}, {col}{tag}", "column": col,
                                "terms": [term(1.0, th, hi), term(-1.0, tl, lo)]})
    return out


def _primary_idx(claim, comps) -> List[int]:
    cols = claim.get("primary")
    if not cols:
        return list(range(len(comps)))
    idx = [i for i, c in enumerate(comps) if c["column"] in cols]
    if not idx:
        raise ClaimError(f"{claim['id']}: primary columns {cols} match no comparison")
    return idx


def _threshold(claim) -> float:
    return float(claim.get("size", 0.0)) if claim["kind"] in ("size", "some") else 0.0


# --------------------------------------------------------------------------- against the paper
def _paper_number(claim, table, row, col) -> Optional[float]:
    if table is None:
        return row  # constant
    pv = claim.get("paper_values", {})
    if row in pv and col in pv[row]:
        return float(pv[row][col])
    if table in PSEUDO_TABLES or table not in paper_mod.keys():
        return None
    if col not in paper_mod.load(table)["columns"]:
        col = _ijcai_column(col)  # IJCAI column names ('White, PGD 20') on a conference table
    try:
        return paper_mod.value(table, row, col)
    except KeyError:
        return None


def judge_paper(claim: Mapping[str, Any]) -> Dict[str, Any]:
    """The claim against the paper's own printed numbers (module docstring)."""
    comps = expand(claim)
    rows, values = [], []
    for c in comps:
        nums = [_paper_number(claim, t, r, col) for _, t, r, col in c["terms"]]
        v = None if any(x is None for x in nums) else round(sum(k * x for (k, *_), x in zip(c["terms"], nums)), 4)
        values.append(v)
        rows.append({"comparison": c["name"], "value": v})
    if all(v is None for v in values):
        return {"verdict": "no numbers printed", "detail": "", "comparisons": rows, "primary": None}
    known = [v for v in values if v is not None]
    thr, kind = _threshold(claim), claim["kind"]
    if kind == "similar":
        ok = [abs(v) < claim["margin"] for v in known]
    else:
        ok = [v > thr for v in known]
    prim_vals = [values[i] for i in _primary_idx(claim, comps) if values[i] is not None]
    primary = float(np.mean(prim_vals)) if prim_vals else None
    if kind == "some":
        verdict = "supported" if any(ok) else "not supported"
    elif all(ok):
        verdict = "supported"
    elif primary is None or (abs(primary) >= claim["margin"] if kind == "similar" else primary <= thr):
        verdict = "not supported"
    else:
        verdict = "partly supported"
    fails = [r["comparison"] + f" ({r['value']:+.2f})" for r, v in zip(rows, values)
             if v is not None and not (abs(v) < claim["margin"] if kind == "similar" else v > thr)]
    if kind == "some":
        fails = []
    detail = f"{sum(ok)} of {len(known)} comparisons clear " + (
        f"|diff| < {claim['margin']:g}" if kind == "similar" else f"{thr:g}")
    if len(known) < len(values):
        detail += f"; {len(values) - len(known)} without printed numbers"
    return {"verdict": verdict, "detail": detail, "failing": fails, "comparisons": rows,
            "primary": None if primary is None else round(primary, 4)}


# --------------------------------------------------------------------------- our runs
def _m_attention_halves(a, meta):
    out = {}
    for split in ("train", "test"):
        if f"curve_{split}" in a:
            c = np.asarray(a[f"curve_{split}"], dtype=float)
            h = len(c) // 2
            out[split] = float((c[:h].mean() - c[h:].mean()) * len(c))
    return out


def _m_top_quarter(a, meta):
    w = np.asarray(a["attention"], dtype=float).reshape(len(a["attention"]), -1)
    k = max(1, w.shape[1] // 4)
    top = np.sort(w, axis=1)[:, ::-1][:, :k].sum(1) / w.sum(1)
    return {"top-quarter share": float(100 * top.mean())}


def _m_border(a, meta, width=4):
    g = np.abs(np.asarray(a["gradient"], dtype=float))
    g = g.sum(1) if g.ndim == 4 else g
    inner = g[:, width:-width, width:-width].sum((1, 2))
    total = g.sum((1, 2))
    return {"border share": float(100 * np.mean((total - inner) / np.maximum(total, 1e-30)))}


def _m_gma(a, meta):
    acc = np.asarray(a["accuracy"], dtype=float) * 100
    return {"With clipping, Train data": acc[0][0], "With clipping, Test data": acc[0][1],
            "Without clipping, Train data": acc[1][0], "Without clipping, Test data": acc[1][1]}


def _m_gm_ratio(a, meta):
    acc = np.asarray(a["accuracy"], dtype=float)
    return {"test maps, % of image accuracy": float(100 * acc[0][1] / meta["classifier_test_accuracy"])}


def _m_att_acc(a, meta):
    return {"Natural": float(100 * np.asarray(a["accuracy"], dtype=float)[0])}


def _m_coverage(a, meta, thr=0.1):
    g = np.abs(np.asarray(a["normalized"], dtype=float))
    return {"coverage": float(100 * (g > thr).mean())}


def _m_sign_coverage(a, meta):
    thr = sorted(meta["thresholds"])[len(meta["thresholds"]) // 2]
    g = np.abs(np.asarray(a["gradient"], dtype=float))
    return {"sign coverage": float(100 * (g > thr).mean())}


def _m_loss_sensitivity(a, meta, dataset="CIFAR-10"):
    out = {}
    for d, v in zip(meta["brightness_deltas"], a["brightness"]):
        out[f"{dataset} brightness {d:+g}"] = float(v)
    for g, v in zip(meta["gammas"], a["gamma"]):
        out[f"{dataset} gamma {g:g}"] = float(v)
    return out


METRICS = {
    "attention_halves": _m_attention_halves, "attention_top_quarter": _m_top_quarter,
    "gradient_border_share": _m_border, "gradient_map_accuracy": _m_gma, "gradient_map_ratio": _m_gm_ratio,
    "attention_comparison_accuracy": _m_att_acc, "gradient_coverage": _m_coverage,
    "sign_coverage": _m_sign_coverage, "loss_sensitivity": _m_loss_sensitivity,
}
"""Measurable statements over stored analysis arrays (`analysis.load_stored`): metric(arrays, meta) -> {column: value}."""

_SPEC_LIKE = {"aelf_table6": "aelf_table2"}
"""Experiments without a results.TableSpec that share another table's suite and columns."""


def _spec(exp_key: str):
    from . import results as results_mod

    return results_mod.get(_SPEC_LIKE.get(exp_key, exp_key))


_DATASET_NAME = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "stl10": "STL-10", "mnist": "MNIST"}


def _ijcai_column(col: str) -> str:
    m = re.match(r"^(White|Transfer), (PGD|CW) (\d+)$", col)
    if m:
        return f"{'White box' if m.group(1) == 'White' else 'Black box'}, {m.group(2)} {m.group(3)} steps"
    return {"Transfer": "Black box"}.get(col, col)


def _profile_name(profile: str) -> str:
    return "cpu" if profile == "stored" else profile


def _store_stamp(exp_key: str, profile: str, root: Optional[str], sub: str) -> Tuple[Tuple[str, int, int], ...]:
    """(path, size, mtime) of every file under <run dir>/<sub>/ and of every weights.json of the
    runs of `exp_key` at `profile`: the observations below are cached on it, so a long-lived
    process (the campaign, a notebook kernel) sees runs evaluated or retrained after its first look."""
    from . import runs as runs_mod

    out = []
    for _, cfg in presets.get(exp_key).configs(profile):
        folder = runs_mod.run_dir(cfg, root)
        for path in [folder / "weights.json", *sorted((folder / sub).glob("*"))]:
            try:
                st = path.stat()
            except OSError:
                continue
            out.append((str(path), st.st_size, st.st_mtime_ns))
    return tuple(out)


def _observe_table(exp_key: str, profile: str, root: Optional[str]) -> Dict[str, Dict[str, dict]]:
    """{label: {result key: {'values', 'flags', 'sources', 'n'} per seed}} from the stored evaluations."""
    return _observe_table_at(exp_key, profile, root, _store_stamp(exp_key, profile, root, "eval"))


@lru_cache(maxsize=64)
def _observe_table_at(exp_key: str, profile: str, root: Optional[str], stamp) -> Dict[str, Dict[str, dict]]:
    from . import evaluate as evaluate_mod
    from . import results as results_mod
    from . import runs as runs_mod

    spec = _spec(exp_key)
    suite = spec.suite_at(profile)
    exp = presets.get(exp_key)
    cfgs = exp.configs(profile)
    ids = {(label, runs_mod.run_dir(cfg, root).name): cfg.seed for label, cfg in cfgs}
    out: Dict[str, Dict[str, dict]] = {}
    for label, cfg in cfgs:
        folder = runs_mod.run_dir(cfg, root)
        if not folder.exists():
            continue
        res, _ = results_mod.stored_result(exp_key, cfg, profile, folder, suite)
        if not res:
            continue
        src_seed = ids.get((label, res.get("transfer_source")))
        for rkey, entry in res["results"].items():
            cell = out.setdefault(label, {}).setdefault(rkey, {"values": {}, "flags": {}, "sources": {}, "n": {}})
            cell["values"][cfg.seed] = 100.0 * entry["accuracy"]
            cell["n"][cfg.seed] = entry["n"]
            if entry.get("correct"):
                cell["flags"][cfg.seed] = evaluate_mod.correct_flags(entry)
            if rkey.startswith("transfer/"):
                cell["sources"][cfg.seed] = src_seed
    return out


def _observe_analysis(exp_key: str, name: str, metric: str, profile: str, root: Optional[str]):
    """{label: {column: {'values': {seed: v}}}} from the newest stored analysis `name` of each run."""
    return _observe_analysis_at(exp_key, name, metric, profile, root,
                                _store_stamp(exp_key, profile, root, "analysis"))


@lru_cache(maxsize=64)
def _observe_analysis_at(exp_key: str, name: str, metric: str, profile: str, root: Optional[str], stamp):
    from . import analysis as analysis_mod
    from . import runs as runs_mod

    exp = presets.get(exp_key)
    out: Dict[str, Dict[str, dict]] = {}
    for label, cfg in exp.configs(profile):
        folder = runs_mod.run_dir(cfg, root) / "analysis"
        files = sorted(folder.glob(f"{name}-*.json"), key=lambda p: p.stat().st_mtime) if folder.exists() else []
        files = [p for p in files if analysis_mod.is_current(folder.parent, p.stem)]
        if not files:
            continue
        stored = analysis_mod.load_stored(folder.parent, files[-1].stem)
        kw = {"dataset": _DATASET_NAME.get(cfg.dataset, cfg.dataset)} if metric == "loss_sensitivity" else {}
        for col, v in METRICS[metric](stored["arrays"], stored["meta"], **kw).items():
            out.setdefault(label, {}).setdefault(col, {"values": {}, "flags": {}, "sources": {}, "n": {}})
            out[label][col]["values"][cfg.seed] = float(v)
    return out


def _ours_for(claim, table) -> Mapping[str, Any]:
    ours = claim["ours"]
    return ours.get("by_table", {}).get(table, ours)


def _cell(claim, table, row, col, profile, root) -> Tuple[Optional[dict], float]:
    """Our observations of (table, row, column) and the measurement's resolution (points)."""
    ours = _ours_for(claim, table)
    row = ours.get("rows", claim["ours"].get("rows", {})).get(row, row)
    if "analysis" in ours:
        obs = _observe_analysis(ours["table"], ours["analysis"], ours["metric"], profile, root)
        return obs.get(row, {}).get(col), 1e-3
    exp = ours["table"]
    spec = _spec(exp)
    mapped = ours.get("columns", {}).get(col) or (col if col in spec.columns else _ijcai_column(col))
    rkey = spec.columns.get(mapped, mapped)
    obs = _observe_table(exp, profile, root)
    cells = obs.get(row, {})
    if "*" in rkey:
        hits = [k for k in cells if re.fullmatch(rkey.replace("*", ".*"), k)]
        rkey = hits[0] if len(hits) == 1 else rkey
    cell = cells.get(rkey)
    res = 100.0 / min(cell["n"].values()) if cell and cell["n"] else 0.1
    return cell, res


def _units(cell) -> Dict[Any, float]:
    if cell["sources"]:
        return stats.transfer_units(cell["values"], cell["sources"])
    return dict(cell["values"])


def _contrast_units(claim, comp, profile, root):
    """Per-unit values of one comparison (None when a term has no runs), resolution, flag pairs."""
    per_term, res = [], 0.0
    for k, t, r, col in comp["terms"]:
        if t is None:
            per_term.append((k, None, r))
            continue
        cell, rr = _cell(claim, t, r, col, profile, root)
        if cell is None or not cell["values"]:
            return {}, rr, None
        res = max(res, rr)
        per_term.append((k, cell, None))
    units = None
    for k, cell, const in per_term:
        if cell is not None:
            u = set(_units(cell))
            units = u if units is None else units & u
    units = sorted(units or [], key=str)
    vals = {}
    for u in units:
        vals[u] = sum(k * (const if cell is None else _units(cell)[u]) for k, cell, const in per_term)
    flags = None
    cells = [(k, c) for k, c, _ in per_term if c is not None]
    if len(cells) == 2 and cells[0][0] > 0 > cells[1][0] and not cells[0][1]["sources"]:
        hi, lo = cells[0][1], cells[1][1]
        flags = {s: [(hi["flags"][s], lo["flags"][s])] for s in units
                 if s in hi["flags"] and s in lo["flags"] and len(hi["flags"][s]) == len(lo["flags"][s])}
    return vals, res, flags


def judge_ours(claim: Mapping[str, Any], profile: str = "cpu", root: Optional[Path] = None,
               paper_primary: Optional[float] = None) -> Dict[str, Any]:
    """The claim against our stored runs at `profile` ('stored' = cpu), with stats.judge."""
    profile = _profile_name(profile)
    if claim["testable"] == "no":
        return {"verdict": "not testable here", "detail": claim["why"]}
    if "ours" not in claim:
        return {"verdict": "not set up", "detail": claim["why"]}
    root_s = None if root is None else str(root)
    comps = expand(claim)
    ivs, rows, res_all, all_flags = [], [], [], []
    for c in comps:
        vals, res, flags = _contrast_units(claim, c, profile, root_s)
        res_all.append(res)
        all_flags.append(flags)
        iv = stats.interval(list(vals.values()), resolution=res)
        ivs.append(iv)
        rows.append({"comparison": c["name"], "n": iv.n, "mean": iv.mean, "lower": iv.lower, "upper": iv.upper,
                     "units": [str(u) for u in vals]})
    # a claim resting on several tables is judged on the tables whose comparisons all have runs
    # (the others are named in the detail) rather than held back until every table has run; a
    # table with some of its rows still missing holds the claim back (its primary would change)
    idx = _primary_idx(claim, comps)
    tables = [{t for _, t, _, _ in c["terms"] if t is not None} for c in comps]
    short = set().union(*(t for t, iv in zip(tables, ivs) if iv.n == 0)) if comps else set()
    missing = [c["name"] for c, t in zip(comps, tables) if t & short]
    if missing and len(missing) < len(comps):
        keep = [i for i, t in enumerate(tables) if not t & short]
        idx = [keep.index(i) for i in idx if i in keep] or list(range(len(keep)))
        comps, ivs, rows, res_all, all_flags = ([v[i] for i in keep] for v in (comps, ivs, rows, res_all, all_flags))
    else:
        missing = []
    # the primary contrast: per unit, the mean over its comparisons (units shared by all of them)
    per = [dict(zip(rows[i]["units"], [None] * rows[i]["n"])) for i in idx]
    shared = set.intersection(*[set(r["units"]) for r in (rows[i] for i in idx)]) if idx else set()
    prim_vals = []
    if shared:
        cache = {i: _contrast_units(claim, comps[i], profile, root_s)[0] for i in idx}
        for u in sorted(shared):
            prim_vals.append(float(np.mean([{str(k): v for k, v in cache[i].items()}[u] for i in idx])))
    del per
    primary = stats.interval(prim_vals, resolution=max(res_all) if res_all else 0.1)
    size = _threshold(claim)
    effect = size if size > 0 else (abs(paper_primary) if paper_primary else None)
    v = stats.judge(ivs, primary, kind=claim["kind"], size=size, margin=claim.get("margin"), claimed_effect=effect)
    later = " and ".join(f"{presets.get(t).paper} {presets.get(t).table}" for t in sorted(short)
                         if t in presets.EXPERIMENTS)
    detail = v.detail + (f"; judged without {len(missing)} of {len(missing) + len(comps)} comparisons, those on "
                         f"{later or ', '.join(sorted(short))} (not run yet)" if missing else "")
    out = {"verdict": v.verdict, "detail": detail, "detectable": v.detectable, "primary_p_holm": v.primary_p_holm,
           "primary": primary.to_dict(), "comparisons": rows, "not_run": missing}
    # image level, beside the seed-level interval: bootstrap over seeds and images of the first
    # primary comparison with per-image flags, and McNemar per seed
    for i in idx:
        if all_flags[i]:
            out["bootstrap"] = {"comparison": comps[i]["name"], **(stats.bootstrap_diff(all_flags[i], n_boot=500) or {})}
            out["mcnemar"] = {str(s): stats.mcnemar(*pairs[0]) for s, pairs in all_flags[i].items()}
            break
    return out


# --------------------------------------------------------------------------- the ledger
def _deviations(claim, profile) -> List[str]:
    from . import results as results_mod

    if "ours" not in claim or claim["testable"] == "no":
        return []
    key = claim["ours"]["table"]
    lines = presets.get(key).deviations(_profile_name(profile))
    if _SPEC_LIKE.get(key, key) in results_mod.TABLES:
        lines += _spec(key).suite_deviations(_profile_name(profile))
    return lines


def build(profile: str = "cpu", root: Optional[Path] = None, claims: Optional[Sequence[dict]] = None) -> List[dict]:
    """One record per claim: the entry, the paper's numbers and verdict, ours and its verdict,
    the testability reason and the profile's deviations. Reads stored records only."""
    out = []
    for c in claims if claims is not None else load_claims():
        p = judge_paper(c)
        o = judge_ours(c, profile, root, p.get("primary"))
        out.append({**c, "profile": _profile_name(profile), "paper_verdict": p, "ours_verdict": o,
                    "deviations": _deviations(c, profile)})
    return out


def _tables_of(claim) -> set:
    tabs = set()
    for c in claim["compare"]:
        if "terms" in c:
            tabs |= {t for _, t, *_ in c["terms"] if t}
        tabs |= {c.get("table"), c.get("high_table"), c.get("low_table")}
    if "ours" in claim:
        tabs.add(claim["ours"]["table"])
        tabs |= {v["table"] for v in claim["ours"].get("by_table", {}).values()}
    return {t for t in tabs if t and t not in PSEUDO_TABLES}


def claims_for(table_key: str, claims: Optional[Sequence[dict]] = None) -> List[str]:
    """Ids of the claims that rest on `table_key` (a paper table or an experiment key): the
    links a table's section in the book shows to the ledger chapter."""
    cl = claims if claims is not None else load_claims()
    return [c["id"] for c in cl if table_key in _tables_of(c)]


def table_claims(key: str, profile: str, root: Optional[Path] = None) -> List[dict]:
    """The claims of one table judged at `profile` (for results.collect): compact dicts."""
    cl = [c for c in load_claims() if key in _tables_of(c)]
    out = []
    for rec in build(profile, root, cl):
        o = rec["ours_verdict"]
        out.append({"id": rec["id"], "text": rec["sentence"], "line": f"{rec['file']}:{rec['line']}",
                    "kind": rec["kind"], "testable": rec["testable"],
                    "paper_verdict": rec["paper_verdict"]["verdict"], "verdict": o["verdict"],
                    "detail": o.get("detail", ""), "primary": o.get("primary"), "detectable": o.get("detectable"),
                    "comparisons": o.get("comparisons", []), "bootstrap": o.get("bootstrap")})
    return out


def _fmt_primary(o: Mapping) -> str:
    p = o.get("primary")
    if not p or not p.get("n"):
        return "—"
    s = f"{p['mean']:+.2f}"
    if p.get("lower") is not None:
        s += f" [{p['lower']:+.2f}, {p['upper']:+.2f}]"
    return s + f" (n = {p['n']})"


def claims_frame(records: Sequence[Mapping]):
    """pandas DataFrame: one row per claim, in reading order: id, sentence, both verdicts, ours
    (mean of the primary contrast, one-sided 95% bounds, n), the paper's numbers, kind,
    testability and why, then the evidence and where the sentence is (a wide table split into
    parts keeps the verdicts beside the claim)."""
    import pandas as pd

    rows = []
    for r in records:
        p, o = r["paper_verdict"], r["ours_verdict"]
        rows.append({
            "id": r["id"], "claim": r["sentence"], "paper verdict": p["verdict"], "our verdict": o["verdict"],
            "ours": _fmt_primary(o),
            "paper numbers": "; ".join(f"{x['comparison']}: {x['value']:+.2f}" for x in p["comparisons"]
                                       if x["value"] is not None) or "—",
            "kind": r["kind"] + (f" (> {r['size']:g})" if "size" in r else "")
            + (f" (±{r['margin']:g})" if "margin" in r else ""),
            "testable": r["testable"], "why": r["why"],
            "evidence": r["evidence"], "paper": r["paper"], "where": f"{r['file']}:{r['line']}",
        })
    return pd.DataFrame(rows)


def counts_frame(records: Sequence[Mapping], which: str = "paper_verdict"):
    """pandas DataFrame: claims per paper (rows) and verdict (columns) of `which`
    ('paper_verdict' or 'ours_verdict'), with totals."""
    import pandas as pd

    df = pd.DataFrame([{"paper": r["paper"], "verdict": r[which]["verdict"]} for r in records])
    t = pd.crosstab(df["paper"], df["verdict"], margins=True, margins_name="total")
    return t
