"""The published numbers of the three papers, one JSON file per table (``data/paper/<key>.json``).

Transcribed by hand from the text extractions in ``../shared/papers`` (FP&R conference and IJCAI
versions, AELF, RLFAT); nothing here is computed. Every file follows one schema::

    key, paper ("FP&R" | "FP&R (IJCAI)" | "AELF" | "RLFAT"), source ("<file> <Table N>"), title,
    unit ("percent" | "gradient_norm"), setting (free-form dict of the stated setting),
    columns [names as in the paper], claims [short sentences the table supports],
    rows [{method (row name as printed), values {column: float | None},
           optional: label (our preset label), method_key (our method registry key; absent for
           other papers' reported numbers), note, uncertain (bool)}],
    optional: uncertain [transcription doubts], natural_of {robust column: its natural-accuracy column}.

Tables printed with methods as columns (FP&R 2, 3, 5; RLFAT 2) are transposed so rows are methods;
"x / y" entries are split into two columns.

    >>> from robustbook import paper
    >>> paper.value("fpr_table2", "AT-att-reg", "White box, PGD 20 steps")
    44.58
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional

PAPER_DIR = Path(__file__).resolve().parents[2] / "data" / "paper"
PAPERS = ("FP&R", "FP&R (IJCAI)", "AELF", "RLFAT")
UNITS = ("percent", "gradient_norm")
METHOD_KEYS = ("pgd_at", "at_reg", "at_att", "at_att_reg", "alp", "st", "jt", "jt_star", "trades", "aelfs",
               "rlfat_p", "rlfat_t", "rbsat_pgd", "rbsat_trades")
_REQUIRED = {"key": str, "paper": str, "source": str, "title": str, "unit": str, "setting": dict,
             "columns": list, "rows": list, "claims": list}
_OPTIONAL = {"uncertain": list, "natural_of": dict}
_ROW_REQUIRED = {"method": str, "values": dict}
_ROW_OPTIONAL = {"label": str, "method_key": str, "note": str, "uncertain": bool}


def keys() -> List[str]:
    """Keys of every transcribed table, sorted."""
    return sorted(p.stem for p in PAPER_DIR.glob("*.json"))


def _check(d: Dict[str, Any], key: str) -> None:
    def bad(msg: str) -> ValueError:
        return ValueError(f"data/paper/{key}.json: {msg}")

    for name, typ in _REQUIRED.items():
        if not isinstance(d.get(name), typ):
            raise bad(f"field {name!r} missing or not a {typ.__name__}")
    for name, typ in _OPTIONAL.items():
        if name in d and not isinstance(d[name], typ):
            raise bad(f"field {name!r} must be a {typ.__name__}")
    extra = set(d) - set(_REQUIRED) - set(_OPTIONAL)
    if extra:
        raise bad(f"unknown fields {sorted(extra)}")
    if d["key"] != key:
        raise bad(f"key {d['key']!r} does not match the file name")
    if d["paper"] not in PAPERS:
        raise bad(f"paper {d['paper']!r} not one of {PAPERS}")
    if d["unit"] not in UNITS:
        raise bad(f"unit {d['unit']!r} not one of {UNITS}")
    cols = d["columns"]
    if not cols or len(set(cols)) != len(cols) or not all(isinstance(c, str) for c in cols):
        raise bad("columns must be a non-empty list of distinct strings")
    if not d["rows"]:
        raise bad("no rows")
    if not all(isinstance(c, str) and c for c in d["claims"] + d.get("uncertain", [])):
        raise bad("claims and uncertain must be lists of non-empty strings")
    for rob, nat in d.get("natural_of", {}).items():
        if rob not in cols or nat not in cols:
            raise bad(f"natural_of names unknown columns {rob!r} -> {nat!r}")
    names = []
    for i, row in enumerate(d["rows"]):
        if not isinstance(row, dict):
            raise bad(f"row {i} is not an object")
        for name, typ in _ROW_REQUIRED.items():
            if not isinstance(row.get(name), typ):
                raise bad(f"row {i}: field {name!r} missing or not a {typ.__name__}")
        for name, typ in _ROW_OPTIONAL.items():
            if name in row and not isinstance(row[name], typ):
                raise bad(f"row {i}: field {name!r} must be a {typ.__name__}")
        extra = set(row) - set(_ROW_REQUIRED) - set(_ROW_OPTIONAL)
        if extra:
            raise bad(f"row {i}: unknown fields {sorted(extra)}")
        if set(row["values"]) != set(cols):
            raise bad(f"row {row['method']!r}: values must have exactly the columns {cols}")
        for c, v in row["values"].items():
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise bad(f"row {row['method']!r}, column {c!r}: {v!r} is not a number or null")
        if "method_key" in row and row["method_key"] not in METHOD_KEYS:
            raise bad(f"row {row['method']!r}: unknown method_key {row['method_key']!r}")
        names.append(row.get("label", row["method"]))
    if len(set(names)) != len(names):
        raise bad("row labels (or method names where no label) must be distinct")


@lru_cache(maxsize=None)
def _load(key: str) -> str:
    path = PAPER_DIR / f"{key}.json"
    if key not in keys():
        raise ValueError(f"unknown paper table {key!r}; available: {', '.join(keys())}")
    d = json.loads(path.read_text())
    _check(d, key)
    return json.dumps(d)


def load(key: str) -> Dict[str, Any]:
    """The table ``key`` as a dict (validated; a fresh copy on every call).

    ValueError for an unknown key (listing the available ones) or a file that breaks the schema."""
    return json.loads(_load(key))


def _row(d: Dict[str, Any], label_or_method: str) -> Dict[str, Any]:
    rows = d["rows"]
    for field in ("label", "method"):
        hits = [r for r in rows if r.get(field) == label_or_method]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise KeyError(f"{d['key']}: {field} {label_or_method!r} matches several rows; use its label")
    hits = [r for r in rows if r.get("method_key") == label_or_method]
    if len(hits) == 1:
        return hits[0]
    avail = [r.get("label", r["method"]) for r in rows]
    why = "matches several rows by method_key" if hits else "names no row"
    raise KeyError(f"{d['key']}: {label_or_method!r} {why}; rows: {avail}")


def value(key: str, label_or_method: str, column: str) -> Optional[float]:
    """The printed number of a row (found by label, else by the paper's row name, else by a
    method_key that names exactly one row) in ``column``; None where the paper prints nothing."""
    d = load(key)
    if column not in d["columns"]:
        raise KeyError(f"{key}: unknown column {column!r}; columns: {d['columns']}")
    return _row(d, label_or_method)["values"][column]


def as_frame(key: str):
    """A pandas DataFrame of the table: one row per paper row (index = label, else method),
    one column per paper column, NaN where the paper prints nothing."""
    import pandas as pd

    d = load(key)
    index = [r.get("label", r["method"]) for r in d["rows"]]
    data = [[r["values"][c] for c in d["columns"]] for r in d["rows"]]
    frame = pd.DataFrame(data, index=pd.Index(index, name="method"), columns=d["columns"], dtype=float)
    frame.attrs.update(key=key, paper=d["paper"], source=d["source"], unit=d["unit"])
    return frame
