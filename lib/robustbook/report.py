"""Tables and plotly figures for the book, built from data (stored results, registries).

Notebooks call these; they never hold plotting or training code of their own.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from . import data as data_mod
from . import device as device_mod
from . import models as models_mod
from . import presets


def setup_plotly() -> None:
    """Figures render as a `<div>` plus a call to `Plotly.newPlot` (no plotly.js, no MathJax, no
    require.js inside the output): the book serves plotly.js once per page from its own
    `_static/vendor/` (robustbook.book), so nothing is fetched from a CDN. Jupyter front ends get
    the plotly mimetype as well. Also resets the page's table style (sent with the first table)."""
    import plotly.io as pio
    from plotly.io.base_renderers import MimetypeRenderer

    class BookRenderer(MimetypeRenderer):
        def to_mimebundle(self, fig_dict):
            import plotly.graph_objects as go

            fig = go.Figure(fig_dict)
            html = fig.to_html(full_html=False, include_plotlyjs=False, include_mathjax=False,
                               config={"displaylogo": False, "responsive": True})
            return {"text/html": html, "application/vnd.plotly.v1+json": fig.to_plotly_json()}

    pio.renderers["robustbook"] = BookRenderer()
    pio.renderers.default = "robustbook"
    global _STYLE_SENT
    _STYLE_SENT = False


# --------------------------------------------------------------------------- readable HTML tables
# Tables are plain HTML with their own small style (sent once per page): they wrap long text,
# keep their first column in view when scrolled sideways, right-align numbers, and never show
# a pandas index, NaN or None. Wide tables are split into column groups that fit the page.
_STYLE = """<style>
.rb-wrap{overflow-x:auto;max-width:100%;margin:.3em 0 1em}
.rb-table{border-collapse:collapse;font-size:.82rem;line-height:1.35;margin:0}
.rb-table caption{caption-side:top;text-align:left;font-weight:600;padding:.2em 0;color:inherit}
.rb-table th,.rb-table td{padding:.3em .55em;border-bottom:1px solid #d9d9d9;vertical-align:top;text-align:left}
.rb-table thead th{background:#f3f4f6;font-weight:600;border-bottom:2px solid #bbb}
.rb-table .num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.rb-table .rb-key{position:sticky;left:0;background:#fff;z-index:1;box-shadow:inset -1px 0 0 #d9d9d9;min-width:7em;max-width:15em}
.rb-table thead .rb-key{background:#f3f4f6}
.rb-table .rb-paper{display:block;color:#6b7280;font-size:.9em}
.rb-table .rb-n{color:#6b7280;font-size:.85em}
.rb-table .rb-none{color:#9ca3af}
.rb-table td.text{min-width:16em;white-space:normal}
.rb-table code{font-size:.9em;white-space:normal}
.rb-details{font-size:.85rem;margin:.2em 0}
.rb-details ul{margin:.2em 0 .6em 1.2em;padding:0}
.rb-note{font-size:.8rem;color:#4b5563;margin:.1em 0 1em}
</style>"""
_STYLE_SENT = False
MISSING = "—"


def _esc(x) -> str:
    import html

    return html.escape(str(x), quote=True)


def _is_missing(v) -> bool:
    if v is None:
        return True
    try:
        import math

        return isinstance(v, float) and math.isnan(v)
    except TypeError:
        return False


def fmt_number(v, digits: Optional[int] = None) -> str:
    """A number at the precision it carries: integers as they are, floats with about three
    significant digits (274.4 -> '274', 51.79 -> '51.8', 1.575 -> '1.57', 0.3304 -> '0.33'),
    or `digits` decimals; None / NaN -> '—'."""
    import numbers

    if _is_missing(v):
        return MISSING
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, numbers.Integral):
        return f"{int(v):,}".replace(",", "\u2009")
    if isinstance(v, numbers.Real):
        v = float(v)
        if digits is None:
            a = abs(v)
            digits = 0 if a >= 100 else 1 if a >= 10 else 2
            if v == round(v) and a < 1e6:
                digits = 0 if a >= 10 else min(digits, 1)
        return f"{v:,.{digits}f}".replace(",", "\u2009")
    return str(v)


def display_path(p) -> str:
    """A path as the reader can use it: relative to the repository (or to the run store), never
    this machine's absolute path."""
    if _is_missing(p) or p == "":
        return MISSING
    path = Path(str(p))
    if not path.is_absolute():
        return str(path)
    from . import runs as runs_mod

    for base, label in ((data_mod.REPO_ROOT, ""), (runs_mod.runs_root(), "<run store>/"),
                        (Path(os.environ.get("ROBUSTBOOK_DATA", "/nonexistent")), "<data>/")):
        try:
            return label + str(path.relative_to(base))
        except ValueError:
            continue
    return ".../" + path.name


_ABS_PATH = re.compile(r"(?<![\w.])/(?:[\w.+-]+/)+([\w.+-]+)")


def strip_paths(text: str) -> str:
    """Absolute paths inside free text reduced to their file name."""
    return _ABS_PATH.sub(lambda m: m.group(1), str(text))


def _cell_html(v, kind: str = "auto") -> Tuple[str, str]:
    """(css class, inner html) of one value."""
    import numbers

    if _is_missing(v) or (isinstance(v, str) and v.strip() in ("", "None", "nan", "NaN")):
        return "rb-none", MISSING
    if isinstance(v, (bool, np_bool)):
        return "", "yes" if v else "no"
    if isinstance(v, numbers.Number):
        return "num", _esc(fmt_number(v))
    if isinstance(v, dict):
        return "", _esc(", ".join(f"{k}: {fmt_number(x)}" for k, x in v.items()))
    if isinstance(v, (list, tuple)):
        return "", _esc(", ".join(map(str, v)))
    text = strip_paths(v)
    if _NUMERIC_TEXT.match(text):  # '4/256', '69.4 → 83.0', '25.5 ± 0.4': aligned like numbers
        return "num", _esc(text)
    if kind == "code":
        return "", f"<code>{_esc(text)}</code>"
    return ("text" if len(text) > 40 else ""), _esc(text)


_NUMERIC_TEXT = re.compile(r"^[\d.,/ \u2009+\-−±→—%×]+$")
try:
    from numpy import bool_ as np_bool
except ImportError:  # pragma: no cover
    np_bool = bool


def _style_once() -> str:
    global _STYLE_SENT
    if _STYLE_SENT:
        return ""
    _STYLE_SENT = True
    return _STYLE


def html_table(header: Sequence, rows: Sequence[Sequence], caption: str = "", key_column: bool = True,
               kinds: Optional[Sequence[str]] = None, cell_html: bool = False) -> str:
    """An HTML table: `header` (one row of labels), `rows` of values (or, with cell_html, of
    (css class, html) pairs); the first column is sticky when `key_column`."""
    kinds = list(kinds or ["auto"] * len(header))
    out = [_style_once(), '<div class="rb-wrap"><table class="rb-table">']
    if caption:
        out.append(f"<caption>{_esc(caption)}</caption>")
    out.append("<thead><tr>")
    for j, h in enumerate(header):
        cls = "rb-key" if key_column and j == 0 else ""
        out.append(f'<th class="{cls}">{_esc(h)}</th>')
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>")
        for j, v in enumerate(row):
            cls, inner = v if cell_html else _cell_html(v, kinds[j] if j < len(kinds) else "auto")
            if key_column and j == 0:
                cls = (cls + " rb-key").strip()
            out.append(f'<td class="{cls}">{inner}</td>')
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _chunks(items: Sequence, size: int) -> List[list]:
    items = list(items)
    n = max(1, -(-len(items) // size))
    per = -(-len(items) // n)
    return [items[i:i + per] for i in range(0, len(items), per)]


def frame_html(df, caption: str = "", max_cols: int = 7, code_columns: Sequence[str] = ()) -> str:
    """A DataFrame as readable HTML: a named index becomes the (sticky) first column, a default
    RangeIndex is dropped; two-level columns are joined ('PGD img/s: before'); more than
    `max_cols` value columns are split into several tables that repeat the first column."""
    import pandas as pd

    df = df.copy()
    if isinstance(df.columns, pd.MultiIndex):
        df.columns = [": ".join(str(x) for x in c if str(x)) for c in df.columns]
    if not isinstance(df.index, pd.RangeIndex) or df.index.name:
        df = df.reset_index()
    cols = [str(c) for c in df.columns]
    key, rest = cols[0], cols[1:]
    parts = []
    groups = _chunks(rest, max_cols) if rest else [[]]
    for i, group in enumerate(groups):
        sub = [key] + group
        kinds = ["code" if c in code_columns else "auto" for c in sub]
        cap = caption if i == 0 else ""
        if len(groups) > 1:
            cap = (cap + " " if cap else "") + f"({i + 1} of {len(groups)})"
        parts.append(html_table([c.replace("_", " ") for c in sub], df[sub].itertuples(index=False, name=None),
                                caption=cap, kinds=kinds))
    return "".join(parts)


def before_after_table(df):
    """`bench.compare` (columns: (measure, before | after), one row per model) as one row per
    measure and one column per model, each cell 'before → after'."""
    import pandas as pd

    measures = list(dict.fromkeys(c[0] for c in df.columns))
    rows = {}
    for m in measures:
        rows[m] = {model: f"{fmt_number(df.loc[model, (m, 'before')])} → {fmt_number(df.loc[model, (m, 'after')])}"
                   for model in df.index}
    out = pd.DataFrame(rows).T
    out.index.name = "measure (before → after)"
    return out


def show(df, caption: str = "", **kw) -> None:
    """Display a DataFrame with `frame_html` (what the notebooks call instead of bare frames)."""
    from IPython.display import HTML, display

    display(HTML(frame_html(df, caption, **kw)))


def datasets_table():
    """Where each dataset comes from on this machine. Only local archives are opened: nothing
    is downloaded just to fill this table."""
    import pandas as pd

    rows = []
    for name in data_mod.DATASETS:
        for split in data_mod.SPLITS:
            official = data_mod.DATASETS[name][2][data_mod.SPLITS.index(split)]
            if data_mod.locate(name) is None:
                rows.append(dict(dataset=name, split=split, images=None, official=official, subset=None,
                                 source="no local archive: torchvision downloads it on first use (needs internet)"))
                continue
            ds = data_mod.load(name, split)
            rows.append(dict(dataset=name, split=split, images=len(ds), official=official,
                             subset=ds.is_subset, source=ds.source))
    return pd.DataFrame(rows)


# (label, registry name, kwargs, input shape) of the papers' architectures
ARCHITECTURES = (
    ("Madry MNIST CNN (FP&R 4.1)", "madry_mnist_cnn", {}, (1, 28, 28)),
    ("CNN_B, MNIST 32x32 (AELF Table 1)", "cnn_b", {"in_channels": 1}, (1, 32, 32)),
    ("CNN_B, CIFAR (AELF Table 1)", "cnn_b", {"in_channels": 3}, (3, 32, 32)),
    ("Madry ResNet narrow [16,16,32,64] (FP&R)", "madry_resnet", {"filters": "narrow"}, (3, 32, 32)),
    ("  + non-linear attention (FP&R 3.2)", "madry_resnet", {"filters": "narrow", "attention": "nonlinear"}, (3, 32, 32)),
    ("  + linear attention (Jetley et al.)", "madry_resnet", {"filters": "narrow", "attention": "linear"}, (3, 32, 32)),
    ("Madry ResNet 3x wide [16,48,96,192] (FP&R)", "madry_resnet", {"filters": "wide3"}, (3, 32, 32)),
    ("Madry ResNet w32-10 (RLFAT CIFAR)", "madry_resnet", {"filters": "w32-10"}, (3, 32, 32)),
    ("Madry ResNet STL-10 [16,32,64,128] x6 (RLFAT)", "madry_resnet", {"filters": "stl10"}, (3, 96, 96)),
    ("WRN-28-10 (AELF Table 5)", "wrn", {"depth": 28, "widen": 10}, (3, 32, 32)),
    ("WRN-40-10, dropout 0.2 (AELF Table 4)", "wrn", {"depth": 40, "widen": 10, "dropout": 0.2}, (3, 32, 32)),
)


def models_table(num_classes: int = 10):
    """Parameter counts and feature sizes of the papers' architectures."""
    import pandas as pd

    rows = []
    for label, name, kw, shape in ARCHITECTURES:
        with torch.device("meta"):
            model = models_mod.build(name, num_classes, **kw)
        rows.append(dict(architecture=label, registry=f"{name}({', '.join(f'{k}={v!r}' for k, v in kw.items())})",
                         input="x".join(map(str, shape)), parameters=sum(p.numel() for p in model.parameters()),
                         feature_dim=model.head.in_features))
    return pd.DataFrame(rows)


def experiments_table():
    """Every experiment, its runs per profile, and how the cpu profile deviates from the paper."""
    import pandas as pd

    rows = []
    for exp in presets.EXPERIMENTS.values():
        rows.append(dict(key=exp.key, paper=exp.paper, table=exp.table, title=exp.title,
                         runs_paper=len(exp.configs("paper")), runs_cpu=len(exp.configs("cpu")),
                         cpu_deviations="; ".join(exp.deviations("cpu"))))
    return pd.DataFrame(rows)


def experiments_html(profile: str = "cpu") -> str:
    """The experiment registry as a compact table (what each preset is, its runs per profile),
    then, folded per experiment, every setting in which `profile` differs from the paper."""
    rows, folds = [], []
    for exp in presets.EXPERIMENTS.values():
        devs = exp.deviations(profile)
        rows.append([f"{exp.paper} {exp.table}", exp.title, len(exp.configs("paper")), len(exp.configs(profile)),
                     len(devs)])
        items = "".join(f"<li>{_esc(strip_paths(d))}</li>" for d in devs)
        folds.append(f"<details class='rb-details'><summary>{_esc(exp.paper)} {_esc(exp.table)} "
                     f"(<code>{_esc(exp.key)}</code>): how the {profile} profile differs ({len(devs)})</summary>"
                     f"<ul>{items}</ul></details>")
    return (html_table(["experiment", "what", "runs (paper)", f"runs ({profile})", "deviations"], rows)
            + "".join(folds))


def image_grid(images: torch.Tensor, titles: Optional[Sequence[str]] = None, cols: int = 8, title: str = "",
               size: int = 110):
    """A plotly grid of images (NCHW in [0,1]); hover shows pixel values."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    images = images.detach().float().clamp(0, 1).cpu()
    n = len(images)
    rows = -(-n // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(titles) if titles else None,
                        horizontal_spacing=0.01, vertical_spacing=0.06)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        arr = (img.permute(1, 2, 0) * 255).round().byte().numpy()
        if arr.shape[-1] == 1:
            arr = arr.repeat(3, axis=-1)
        fig.add_trace(go.Image(z=arr), row=r + 1, col=c + 1)
    for ann in fig.layout.annotations:  # subplot titles: row labels, left-aligned so they are never cut
        ann.update(xanchor="left", x=0, font=dict(size=12))
    fig.update_xaxes(visible=False).update_yaxes(visible=False)
    fig.update_layout(title=dict(text=title), height=rows * size + 60, width=cols * size, margin=dict(l=5, r=5, t=50, b=5))
    return fig


def transforms_gallery(x: torch.Tensor, seed: int = 0) -> List:
    """The papers' transforms applied to a few images: RBS (both readings), brightness, gamma."""
    from . import transforms as T

    g = lambda: device_mod.generator(x.device, seed)  # noqa: E731
    rows = [
        ("original", x),
        ("RBS, official one-cut (RLFAT code)", T.rbs(x, 2, g(), mode="official")),
        ("RBS, paper k=3 blocks (RLFAT Fig. 1)", T.rbs(x, 3, g(), mode="paper")),
        ("brightness +0.15 (HSV value)", T.brightness(x, 0.15)),
        ("gamma 0.8", T.gamma(x, 0.8)),
    ]
    imgs = torch.cat([r[1] for r in rows])
    titles = [f"{label}" if j == 0 else "" for label, _ in rows for j in range(len(x))]
    return image_grid(imgs, titles, cols=len(x), title="Transforms used by the papers")


# --------------------------------------------------------------------------- reproduced tables
# marks from text fonts (DejaVu has them all): emoji such as U+2705 draw as empty boxes in a
# browser without an emoji font (seen in headless chromium on Debian)
_VERDICT_MARK = {"supported": "✓ supported", "contradicted": "✗ contradicted",
                 "same direction, not significant": "↗ same direction, not significant",
                 "inconclusive": "? inconclusive",
                 "not enough seeds": "◔ not enough seeds (needs 2 evaluated seeds per row)",
                 "no runs": "○ no runs evaluated yet", "no runs yet": "○ no runs evaluated yet",
                 "not checked": "not checked (no machine-readable comparison)"}


def table_title(table, column: Optional[str] = None) -> str:
    """'FP&R Table 2: Natural' (the paper's name of the table, never the internal key)."""
    head = f"{table['paper']} {table['table']}"
    return f"{head}: {column}" if column else head


def results_header(table) -> str:
    """Markdown: what the numbers are, at which profile, how far from the paper's setting."""
    done = sum(r["state"] == "evaluated" for r in table["runs"])
    lines = [f"**{table['paper']} {table['table']}**: {table['title']}",
             "",
             f"- profile **{table['profile']}**: {done} of {len(table['runs'])} runs trained and evaluated "
             f"(suite `{table['suite']['name']}`, hash `{table['suite']['hash']}`); collected "
             f"{str(table['created']).replace('T', ' ')} at commit `{table.get('git_commit') or 'unknown'}`, "
             f"library {table['version']}.",
             "- each cell: **ours**, the mean ± standard deviation over seeds (number of seeds in brackets; "
             "one seed has no spread), and below it, in grey, **the paper's value** (none for rows the paper "
             f"does not print); ⚠ = a check of the evaluation failed for that number (hover for which: a "
             "gradient-masking check, or `pgd_converged`, a longer attack of the check rows reads clearly "
             f"lower, so the number overstates robustness); {MISSING} = no evaluated run yet."]
    if table["profile"] != "paper":
        lines.append(f"- **not the paper's setting**; the {table['profile']} profile differs in:")
        for d in table["deviations"]:
            d = strip_paths(d).replace(" -> ", " → ")
            name, _, rest = d.partition(": ")
            lines.append(f"  - *why*: {rest}" if name == "why" else f"  - `{name}`: {rest}" if rest else f"  - {d}")
    lines.append(f"- evaluation: {strip_paths(table['suite']['ref'])}")
    return "\n".join(lines)


def results_long(table):
    """One row per (method, column): paper value, our mean, std, n and per-seed values."""
    import pandas as pd

    rows = []
    for r in table["rows"]:
        for col in table["columns"]:
            cell = table["cells"][r][col]
            rows.append(dict(method=r, column=col, paper=cell["paper"], ours=cell["mean"], std=cell["std"],
                             n=cell["n"], seeds=cell["seeds"], runs=cell["runs"], doubts=cell["doubts"]))
    return pd.DataFrame(rows)


def fmt_paper(v) -> str:
    """The paper's number as printed (47 -> '47.0', 47.04 -> '47.04')."""
    if _is_missing(v):
        return MISSING
    s = f"{float(v):.2f}".rstrip("0")
    return s + "0" if s.endswith(".") else s


def fmt_ours(cell) -> str:
    """'25.5 ± 0.4' over several seeds, '25.5' for one, '—' for none (plain text)."""
    if not cell.get("n"):
        return MISSING
    from . import results as results_mod

    return results_mod.fmt_mean_spread(cell["mean"], cell.get("std") if cell["n"] > 1 else None)


def seeds_text(cell) -> str:
    """'seed 0: 22.6' / 'seeds 0: 22.6, 1: 23.0' (never a raw dict)."""
    seeds = cell.get("seeds") or {}
    if not seeds:
        return "no evaluated seed"
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(f"{k}: {v:.1f}" for k, v in seeds.items())


def _result_cell(cell) -> Tuple[str, str]:
    if cell.get("n"):
        n = cell["n"]
        ours = (f'{_esc(fmt_ours(cell))} <span class="rb-n" title="{n} seed{"s" if n > 1 else ""}">({n})</span>'
                + (f' <span title="{_esc("; ".join(cell["doubts"]))}">⚠</span>' if cell.get("doubts") else ""))
        cls = "num"
    else:
        ours, cls = f'<span class="rb-none" title="no evaluated run yet">{MISSING}</span>', "num"
    paper = (f'<span class="rb-paper" title="the paper\'s value">{fmt_paper(cell["paper"])}</span>'
             if not _is_missing(cell.get("paper")) else "")
    return cls, ours + paper


def column_groups(columns: Sequence[str], max_cols: int = 7) -> List[Tuple[str, List[str]]]:
    """Split a table's columns into groups that fit the page: by the prefix before ', '
    ('White box, PGD 5 steps' -> 'White box'), columns without a prefix joining the next group;
    a group longer than `max_cols` is cut into parts."""
    groups: List[Tuple[str, List[str]]] = []
    loose: List[str] = []
    for col in columns:
        prefix = col.split(", ", 1)[0] if ", " in col else ""
        if not prefix:
            loose.append(col)
            continue
        if groups and groups[-1][0] == prefix:
            groups[-1][1].append(col)
        else:
            groups.append((prefix, loose + [col]))
            loose = []
    if loose:
        groups.append(("", loose))
    out = []
    for name, cols in groups:
        for part in _chunks(cols, max_cols):
            out.append((name, part))
    return out


def results_html(table, max_cols: int = 7) -> str:
    """The paper-vs-ours table as HTML, one table per column group (white box, black box, ...),
    each repeating the method column; a cell shows ours (mean ± std, seeds) above the paper's value."""
    parts = []
    for name, cols in column_groups(table["columns"], max_cols):
        header = ["method"] + [c.split(", ", 1)[1] if name and c.startswith(name + ", ") else c for c in cols]
        rows = [[("", _esc(r))] + [_result_cell(table["cells"][r][c]) for c in cols] for r in table["rows"]]
        cap = f"{table_title(table)}, {name.lower() if name else 'accuracy'} (%)"
        parts.append(html_table(header, rows, caption=cap, cell_html=True))
    return "".join(parts)


def checks_html(table) -> str:
    """The table's check rows (`results.check_entries`) as HTML, one column each, or '' when
    there are none: ours only, as the paper prints none of them."""
    checks = table.get("check_cells") or {}
    if not checks:
        return ""
    names = list(checks)
    rows = [[("", _esc(r))] + [("num", _esc(fmt_ours(checks[c][r])) + (f' <span class="rb-n">({checks[c][r]["n"]})</span>'
                                                                    if checks[c][r].get("n") else ""))
                              for c in names] for r in table["rows"]]
    cap = f"{table_title(table)}: check rows, ours only (%)"
    note = ("<p class='rb-note'>Evidence for the table, not numbers of the paper: the gradient-masking "
            "checklist's attacks (<code>robustbook.evaluate.masking_checks</code>). A longer attack reading "
            "lower than the table's means the table's attack has not converged; the large-eps PGD alone may "
            "stall on a confident model, so its check counts the examples the table's attacks found too.</p>")
    return html_table(["method"] + names, rows, caption=cap, cell_html=True) + note


def results_figure(table, height: int = 460):
    """Grouped bars of our mean (error bar = std over seeds, hover = per-seed values and run
    ids) with the paper's value as a marker; a dropdown picks the column (works offline)."""
    import plotly.graph_objects as go

    long = results_long(table)
    cols = table["columns"]
    fig = go.Figure()
    for col in cols:
        d = long[long.column == col]
        visible = col == cols[0]
        hover = []
        for m, n, mean, std, seeds, runs, doubts in zip(d.method, d.n, d.ours, d["std"], d.seeds, d.runs, d.doubts):
            if not n:
                hover.append(f"<b>{m}</b><br>no evaluated run yet")
                continue
            cell = {"n": n, "mean": mean, "std": None if _is_missing(std) else std, "seeds": seeds}
            hover.append(f"<b>{m}</b><br>ours {fmt_ours(cell)} ({n} seed{'s' if n > 1 else ''})<br>{seeds_text(cell)}"
                         f"<br>run{'s' if len(runs) > 1 else ''}: {', '.join(runs.values())}"
                         + (f"<br>⚠ {', '.join(doubts)}" if doubts else ""))
        std = [None if (_is_missing(s) or not n or n < 2) else s for s, n in zip(d["std"], d.n)]
        fig.add_trace(go.Bar(x=d.method, y=d.ours, name=f"ours ({table['profile']} profile)", visible=visible,
                             error_y=dict(type="data", array=std, visible=True), hovertext=hover,
                             hoverinfo="text", marker_color="#1f77b4"))
        fig.add_trace(go.Scatter(x=d.method, y=d.paper, name="paper", mode="markers", visible=visible,
                                 hovertemplate="paper %{y}<extra></extra>",
                                 marker=dict(symbol="diamond", size=12, color="#d62728")))
    buttons = []
    for i, col in enumerate(cols):
        vis = [False] * (2 * len(cols))
        vis[2 * i] = vis[2 * i + 1] = True
        buttons.append(dict(label=col, method="update",
                            args=[{"visible": vis}, {"title.text": table_title(table, col)}]))
    fig.update_layout(title=dict(text=table_title(table, cols[0])), yaxis=dict(title="accuracy (%)", rangemode="tozero"),
                      height=height,
                      updatemenus=[dict(buttons=buttons, x=1.0, xanchor="right", y=1.16, yanchor="top")],
                      legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0), margin=dict(t=100))
    return fig


_STEPS = re.compile(r"^(?:(?P<box>.+), )?PGD (?P<k>\d+) steps$")


def steps_figure(table, height: int = 440):
    """Accuracy against the number of PGD steps (one attack run recorded at every step count,
    `record_steps`), browsed with a slider: bars per method and box, the paper's value as a
    diamond. None when the table has fewer than two PGD step columns."""
    import plotly.graph_objects as go

    by_k: Dict[int, List[str]] = {}
    for col in table["columns"]:
        m = _STEPS.match(col)
        if m:
            by_k.setdefault(int(m.group("k")), []).append(col)
    if len(by_k) < 2:
        return None
    ks = sorted(by_k)
    boxes = list(dict.fromkeys(c.split(", ", 1)[0] if ", " in c else "" for k in ks for c in by_k[k]))
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c"]
    fig = go.Figure()
    per_step = []
    for k in ks:
        idx = []
        for b, box in enumerate(boxes):
            col = next((c for c in by_k[k] if (c.split(", ", 1)[0] if ", " in c else "") == box), None)
            if col is None:
                continue
            cells = [table["cells"][r][col] for r in table["rows"]]
            label = box or "ours"
            idx.append(len(fig.data))
            fig.add_trace(go.Bar(x=table["rows"], y=[c["mean"] for c in cells], name=f"ours, {label.lower()}",
                                 visible=k == ks[0], marker_color=colors[b % 3], offsetgroup=str(b),
                                 hovertext=[f"{r}: {fmt_ours(c)} ({seeds_text(c)})" for r, c in zip(table["rows"], cells)],
                                 hoverinfo="text"))
            idx.append(len(fig.data))
            fig.add_trace(go.Scatter(x=table["rows"], y=[c["paper"] for c in cells], mode="markers",
                                     name=f"paper, {label.lower()}", visible=k == ks[0], offsetgroup=str(b),
                                     marker=dict(symbol="diamond", size=11, color=colors[b % 3],
                                                 line=dict(color="#333", width=1))))
        per_step.append(idx)
    steps = []
    for k, idx in zip(ks, per_step):
        vis = [i in idx for i in range(len(fig.data))]
        steps.append(dict(label=str(k), method="update",
                          args=[{"visible": vis}, {"title.text": f"{table_title(table)}: accuracy after {k} PGD steps"}]))
    fig.update_layout(title=dict(text=f"{table_title(table)}: accuracy after {ks[0]} PGD steps"),
                      yaxis=dict(title="accuracy (%)", rangemode="tozero"), barmode="group", height=height,
                      scattermode="group",
                      sliders=[dict(active=0, steps=steps, currentvalue=dict(prefix="PGD steps: "), pad=dict(t=50))],
                      legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0), margin=dict(t=100))
    return fig


def claims_html(table) -> str:
    """The paper's claims (full text, never cut) with the paper's verdict and ours, from
    `results.claims_frame` (the claims ledger); empty columns are left out."""
    from . import results as results_mod

    df = results_mod.claims_frame(table)
    if df.empty:
        return "<p class='rb-note'>No claim of the papers rests on this table.</p>"
    for col in ("verdict", "paper verdict"):
        if col in df:
            df[col] = df[col].map(lambda v: _VERDICT_MARK.get(v, v))
    # the source line ('where') is a pointer into the papers' text files, not for reading here
    keep = [c for c in df.columns if c not in ("id", "where") and df[c].astype(str).str.strip().replace("—", "").any()]
    if "claim" in df and "id" in df:
        df["claim"] = [f"{t} ({i})" if i else t for t, i in zip(df["claim"], df["id"])]
    names = {"paper verdict": "on the paper's numbers", "verdict": "on our runs", "primary contrast": "ours (primary contrast)"}
    rows = df[keep].itertuples(index=False, name=None)
    return html_table([names.get(c, c) for c in keep], rows, key_column=False)


def precision_check_html(check) -> str:
    """`results.precision_check` as a table: one row per (bf16 twin, column) with both rows'
    mean ± std (seeds), the move, the seed spread it must stay under, the paired per-seed
    difference with its one-sided 95% bounds, and whether the cell passes; a verdict line first."""
    marks = {True: "yes", False: "NO", None: MISSING}
    verdict = {"pass": "pass: bf16 training may be used in the cpu profile",
               "fail": "fail: some cell moves by more than the seed spread, training stays fp32",
               "incomplete": f"not decided yet: {check['missing']} of {len(check['cells'])} cells lack 2 seeds "
                             "on both sides"}[check["verdict"]]
    rows = []
    for c in check["cells"]:
        p = c.get("paired") or {}
        paired = MISSING
        if p.get("n"):
            paired = f"{p['mean']:+.1f}" + (f" [{p['lower']:+.1f}, {p['upper']:+.1f}]" if p.get("lower") is not None
                                             else "") + f" ({p['n']})"
        rows.append([f"{c['row']}: {c['column']}",
                     fmt_ours(c["fp32"]) + (f" ({c['fp32']['n']})" if c["fp32"].get("n") else ""),
                     fmt_ours(c["bf16"]) + (f" ({c['bf16']['n']})" if c["bf16"].get("n") else ""),
                     MISSING if c["move"] is None else f"{c['move']:+.1f}",
                     MISSING if c["spread"] is None else f"{c['spread']:.1f}", paired, marks[c["passes"]]])
    speed = "; ".join(
        f"{t['row']}: {t['speedup']:.2f}x faster in bf16 ({t['paired_seeds']} "
        f"seed{'s' if t['paired_seeds'] > 1 else ''} paired)" if t["speedup"]
        else f"{t['row']}: no bf16 run trained yet" for t in check["twins"])
    chance = ""
    if check.get("judged"):
        chance = (f" Of the {check['judged']} cells judged, {len(check['failing'])} move by more than the spread. "
                  f"Two independently seeded rows of the same training would fail about "
                  f"{check['expected_failing_if_equal']:.1f} (each cell with probability "
                  f"{check['expected_failing_if_equal'] / check['judged']:.2f} at these seed counts: the difference "
                  "of two rows' means often exceeds one row's seed std), so the rule, strict by design, is near "
                  "impossible to pass by chance alone. A twin shares each seed's initialization and batch order "
                  "with its fp32 run, which makes its moves smaller than that: the swap test below is the "
                  "yardstick that keeps this pairing.")
    swap = check.get("swap_test")
    if swap:
        chance += (f" Swapping each seed's fp32 and bf16 copies ({', '.join(swap['twins'])}: {swap['cells']} cells, "
                   f"all {swap['patterns']} patterns, exact under 'bf16 changes nothing') gives at least "
                   f"{swap['observed']} failing cells in "
                   f"{100 * swap['p']:.0f}% of them (p = {swap['p']:.2f}): "
                   + ("as many cells move as seed noise alone would make move (no evidence of an effect; "
                       "with this few seeds, no proof of its absence either)." if swap["p"] >= 0.05 else
                       "more cells move than seed noise explains."))
    head = (f"<p><b>Verdict: {_esc(verdict)}.</b> Rule: {_esc(check['rule'])}.{_esc(chance)} Training time, "
            f"fp32 over bf16 (same seeds; the runs may come from different hosts and loads): {_esc(speed)}.</p>")
    return head + html_table(["cell", "fp32 (seeds)", "bf16 (seeds)", "move", "seed spread (fp32 std)",
                              "bf16 − fp32 per seed [95% bounds] (n)", "moves less than the spread"], rows)


def claims_table(table):
    """The paper's claims with our verdict on them, as a DataFrame (see robustbook.results)."""
    from . import results as results_mod

    df = results_mod.claims_frame(table)
    df["verdict"] = df["verdict"].map(lambda v: _VERDICT_MARK.get(v, v))
    return df


def _duration(seconds) -> str:
    if _is_missing(seconds):
        return MISSING
    s = float(seconds)
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def runs_table(table):
    """Every run behind the table: state, epochs, time, config and evaluation files."""
    import pandas as pd

    return pd.DataFrame([{
        "method": r["label"], "seed": r["seed"], "run id": r["run_id"], "state": r["state"],
        "epochs": f"{r.get('epochs_done', 0)} / {r.get('epochs')}",
        "training": _duration(r.get("train_seconds")) if r.get("epochs_done") else MISSING,
        "evaluation": _duration(r.get("eval_seconds")),
    } for r in table["runs"]])


def show_table(table, figure: bool = True) -> None:
    """Display everything the book shows for one reproduced table: header (profile, deviations,
    evaluation), paper-vs-ours table, figures, claims with verdicts, and the runs behind it."""
    from IPython.display import HTML, Markdown, display

    display(Markdown(results_header(table)))
    display(HTML(results_html(table)))
    if table.get("check_cells"):
        display(HTML(checks_html(table)))
    if figure:
        display(results_figure(table))
        steps = steps_figure(table)
        if steps is not None:
            display(steps)
    display(Markdown("**The paper's claims, checked** against the paper's own numbers and against our runs "
                     "(the claims ledger: paired by seed, one-sided 95% t bounds with n - 1 degrees of freedom; "
                     "supported: every comparison's lower bound above zero or the claimed size; contradicted: "
                     "the primary contrast below zero after Holm correction; \"similar\" claims by two one-sided "
                     "tests; see the claims ledger chapter)"))
    display(HTML(claims_html(table)))
    files = sorted({Path(str(r["eval_file"])).name for r in table["runs"] if r.get("eval_file")})
    display(Markdown("**Runs behind the numbers**: each run's records are in `data/runs/<run id>/` "
                     "(`config.json`, `metrics.jsonl` with one line per epoch"
                     + (f", and the evaluation `eval/{files[0]}`" if len(files) == 1 else
                        ", and its evaluation under `eval/`") + ")"))
    display(HTML(frame_html(runs_table(table), max_cols=8, code_columns=("run id",))))


# --------------------------------------------------------------------------- live tweak panel
EPS_RANGE = {"mnist": (0.0, 0.4, 0.01, 1.0), "cifar10": (0.0, 16.0, 1.0, 255.0), "cifar100": (0.0, 16.0, 1.0, 255.0),
             "stl10": (0.0, 16.0, 1.0, 255.0)}
"""dataset -> (slider min, max, step, scale): the slider shows eps x scale (MNIST in pixel units
0..0.4, the CIFAR-like sets in 1/255 units 0..16)."""


def scratch_root() -> Path:
    """Where tweak runs go: $ROBUSTBOOK_SCRATCH or a folder in the system's temp dir; never the
    committed run store (data/runs)."""
    import tempfile

    return Path(os.environ.get("ROBUSTBOOK_SCRATCH") or Path(tempfile.gettempdir()) / "robustbook-scratch")


def tweak_config(base, eps: float, epochs: int, seed: int, lam: Optional[float] = None):
    """`base` with another eps (step size scaled with it), epoch count (LR milestones rescaled,
    `presets.rescale`), seed and regulariser weight."""
    alpha = base.alpha * eps / base.eps if base.eps > 0 and eps > 0 else base.alpha
    cfg = presets.rescale(base, int(epochs)) if int(epochs) != base.epochs else base
    changes = dict(eps=float(eps), alpha=alpha, seed=int(seed))
    if lam is not None and base.lam > 0:
        changes["lam"] = float(lam)
    return cfg.replace(**changes)


def estimate_seconds(cfg, measure: bool = True) -> Tuple[Optional[float], str]:
    """Training seconds of `cfg` on this machine: from a stored run of the same model and method
    when there is one (seconds per epoch x epochs), else measured on a few batches
    (`robustbook.estimate`). Returns (seconds or None, how it was obtained)."""
    from . import results as results_mod

    for c in (cfg.replace(seed=0), cfg.replace(seed=0, profile="cpu")):
        try:
            st = results_mod.status(c)
        except Exception:  # noqa: BLE001 - a config the store cannot resolve: measure instead
            continue
        if st["epochs_done"]:
            per_epoch = st["train_seconds"] / st["epochs_done"]
            return per_epoch * cfg.epochs, f"from run {st['run_id']} ({per_epoch:.0f} s per epoch)"
    if not measure:
        return None, "not timed yet"
    from . import estimate as estimate_mod

    n = cfg.train_size or data_mod.DATASETS[cfg.dataset][2][0]
    per_image = estimate_mod.seconds_per_image(cfg, batches=2)
    pre = (cfg.pretrain_epochs or 0) if getattr(cfg, "pretrain_epochs", None) else 0
    return per_image * n * (cfg.epochs + pre), "measured on 2 batches just now (training only)"


_PROGRESS = re.compile(r"epoch (\d+)/(\d+)[^|]*\|[^|]*\|\s*(\d+)/(\d+)")


def _tweak_worker() -> None:
    """Subprocess side of the tweak panel: JSON spec on stdin -> train in the scratch store,
    evaluate, print 'RESULT <json>'."""
    import json

    from . import evaluate as evaluate_mod
    from . import results as results_mod
    from . import runs as runs_mod
    from .config import RunConfig

    spec = json.loads(sys.stdin.read())
    cfg = RunConfig.from_dict(spec["config"])
    run = runs_mod.train(cfg, root=Path(spec["root"]), progress=True)
    suite = results_mod.get(spec["key"]).suite_at(spec["suite_profile"]).replace(n=spec["n"], transfer=False)
    result = evaluate_mod.evaluate(run, suite, progress=False)
    acc = {}
    for col, rkey in results_mod.get(spec["key"]).columns.items():
        hits = [e for k, e in result["results"].items() if re.fullmatch(rkey.replace("*", ".*"), k)]
        if len(hits) == 1:
            acc[col] = round(100 * hits[0]["accuracy"], 2)
    print("RESULT " + json.dumps({"run_id": run.dir.name, "accuracy": acc, "n": result.get("n")}), flush=True)


def tweak_panel(key: str, profile: str = "smoke", table=None):
    """ipywidgets controls to re-train one row of experiment `key` with other hyper-parameters
    (regulariser weight, eps, epochs, seed) and evaluate it on a few test images.

    Training runs in a subprocess (the kernel stays free): a progress bar, a cancel button, the
    start button disabled while a run is going, and an estimate of the time before it starts.
    eps is set in the dataset's own range; the LR milestones are rescaled with the epochs. Runs
    go to the scratch store (`scratch_root()`), never into data/runs, and the result is shown
    beside the committed row it varies (from `table`, the notebook's collected table). In the
    static book the controls are drawn from their saved state but need a kernel to run."""
    import json
    import subprocess
    import threading
    import time

    import ipywidgets as W
    from IPython.display import HTML, display

    from .config import ConfigError

    exp = presets.get(key)
    configs = dict(exp.configs(profile, seeds=[0]))
    first = next(iter(configs.values()))
    lo, hi, step, scale = EPS_RANGE.get(first.dataset, (0.0, 1.0, 0.01, 1.0))
    unit = " (×1/255)" if scale == 255 else ""
    style = {"description_width": "7em"}
    note = W.HTML(
        f"<div class='rb-note'>Needs a live Jupyter kernel (in the static book these controls are inert). "
        f"Profile <b>{profile}</b>; runs go to the scratch store ($ROBUSTBOOK_SCRATCH or a temporary "
        f"folder), never to <code>data/runs</code>.</div>")
    row = W.Dropdown(options=list(configs), description="row", style=style)
    lam = W.FloatLogSlider(value=0.1, base=10, min=-3, max=1, description="λ (weight)", style=style)
    eps = W.FloatSlider(value=min(hi, first.eps * scale), min=lo, max=hi, step=step, description=f"eps{unit}",
                        readout_format=".2f" if scale == 1 else ".0f", style=style)
    epochs = W.IntSlider(value=first.epochs, min=1, max=max(50, first.epochs), description="epochs", style=style)
    seed = W.BoundedIntText(value=0, min=0, max=10_000, description="seed", style=style)
    n_test = W.IntSlider(value=200, min=50, max=1000, step=50, description="test images", style=style)
    go_btn = W.Button(description="train + evaluate", button_style="primary", icon="")
    cancel = W.Button(description="cancel", button_style="warning", disabled=True)
    bar = W.FloatProgress(value=0, min=0, max=1, description="idle", style=style,
                          layout=W.Layout(width="28em"))
    info = W.HTML()
    out = W.Output()
    state = {"proc": None, "cancelled": False}

    def current():
        base = configs[row.value]
        return base, tweak_config(base, eps.value / scale, epochs.value, seed.value,
                                  lam.value if base.lam > 0 else None)

    def describe(_=None):
        try:
            base, cfg = current()
        except (ConfigError, ValueError) as e:
            info.value = f"<span style='color:#b91c1c'>invalid setting: {_esc(e)}</span>"
            return
        secs, how = estimate_seconds(cfg, measure=False)
        est = f"≈ {_duration(secs)} of training ({_esc(how)})" if secs else "time: estimated when you start"
        ms = ", ".join(map(str, cfg.milestones)) or "none"
        info.value = (f"<div class='rb-note'>run <code>{_esc(cfg.run_id)}</code>: "
                      f"{cfg.method}, {cfg.epochs} epoch(s), LR milestones {ms}; {est}</div>")

    def sync(_=None):
        base = configs[row.value]
        lam.value = base.lam if base.lam > 0 else 0.1
        lam.disabled = base.lam == 0
        eps.value = min(hi, base.eps * scale)
        epochs.value = base.epochs
        describe()

    def compare(result, cfg):
        cols = [c for c in (table["columns"] if table else result["accuracy"]) if c in result["accuracy"]]
        committed = ["committed: " + row.value + (f" ({table['profile']})" if table else "")]
        tweak = [f"tweak: eps {eps.value:g}{unit}, {cfg.epochs} ep, seed {cfg.seed}"
                 + (f", λ {cfg.lam:g}" if configs[row.value].lam > 0 else "") + f" ({result['n']} images)"]
        rows = [tweak + [f"{result['accuracy'][c]:.1f}" for c in cols]]
        if table and row.value in table["cells"]:
            rows.insert(0, committed + [fmt_ours(table["cells"][row.value][c]) for c in cols])
        return html_table(["run"] + cols, rows)

    def work(cfg, base):
        proc = None
        try:
            t0 = time.time()
            secs, how = estimate_seconds(cfg)
            bar.description = "starting"
            out.append_stdout(f"{cfg.method}: {cfg.epochs} epoch(s), estimated {_duration(secs)} of training "
                              f"({how}), then evaluation on {n_test.value} images.\n")
            spec = {"config": cfg.to_dict(), "root": str(scratch_root()), "key": key, "suite_profile": profile,
                    "n": int(n_test.value)}
            proc = subprocess.Popen([sys.executable, "-c", "from robustbook.report import _tweak_worker; _tweak_worker()"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    env={**os.environ, "PYTHONUNBUFFERED": "1"})
            state["proc"] = proc
            proc.stdin.write(json.dumps(spec))
            proc.stdin.close()
            lines: List[str] = []
            threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
            buf, tail = "", []
            while True:
                ch = proc.stderr.read(256)
                if not ch:
                    break
                buf = (buf + ch)[-2000:]
                hits = _PROGRESS.findall(buf)
                if hits:
                    e, E, k, K = map(int, hits[-1])
                    bar.value = min(1.0, (e - 1 + k / max(K, 1)) / max(E, 1))
                    bar.description = f"epoch {e}/{E}"
                tail = (tail + ch.splitlines())[-20:]
            proc.wait()
            if state["cancelled"]:
                bar.description = "cancelled"
                out.append_stdout("cancelled; the run's checkpoint stays in the scratch store (it resumes).\n")
                return
            result = next((json.loads(x[7:]) for x in lines if x.startswith("RESULT ")), None)
            if proc.returncode != 0 or result is None:
                bar.description = "failed"
                out.append_stdout("training failed:\n" + "\n".join(t for t in tail if t.strip())[-3000:] + "\n")
                return
            bar.value, bar.description = 1.0, "done"
            out.append_stdout(f"done in {_duration(time.time() - t0)}: run {result['run_id']} (scratch store)\n")
            out.append_display_data(HTML(compare(result, cfg)))
        except Exception as e:  # noqa: BLE001 - shown in the panel, the kernel keeps going
            bar.description = "failed"
            out.append_stdout(f"error: {e}\n")
        finally:
            state["proc"] = None
            go_btn.disabled, cancel.disabled = False, True

    def start(_):
        if state["proc"] is not None or go_btn.disabled:
            return
        out.clear_output()
        try:
            base, cfg = current()
        except (ConfigError, ValueError) as e:
            out.append_stdout(f"invalid setting: {e}\n")
            return
        go_btn.disabled, cancel.disabled = True, False
        state["cancelled"] = False
        bar.value = 0
        threading.Thread(target=work, args=(cfg, base), daemon=True).start()

    def stop(_):
        proc = state["proc"]
        state["cancelled"] = True
        if proc is not None and proc.poll() is None:
            proc.terminate()

    row.observe(sync, names="value")
    for w in (lam, eps, epochs, seed):
        w.observe(describe, names="value")
    go_btn.on_click(start)
    cancel.on_click(stop)
    sync()
    display(W.VBox([note, W.HBox([row, seed]), W.HBox([lam, eps]), W.HBox([epochs, n_test]), info,
                    W.HBox([go_btn, cancel, bar]), out]))
