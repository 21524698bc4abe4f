"""Every figure and remaining table of the three papers, drawn from stored records.

One function per paper figure or table (``fpr_figure2(profile)``, ``aelf_figure1(profile)``,
``rlfat_table2(profile)``, ...). Each returns a `Panel`: plotly figures and / or small
DataFrames with a caption that says what the paper reports, what we measured, from which
runs and at which profile. They read only JSON / npz records:

* the analyses stored next to each run (``data/runs/<id>/analysis/``, `robustbook.analysis`),
* the evaluation files (``data/runs/<id>/eval/*.json``, `robustbook.evaluate`) through
  `robustbook.results.collect`,
* the paper's numbers (``data/paper/*.json``, `robustbook.paper`),

so the book builds without weights. Where the runs do not exist (not yet trained, or the data
set is not available offline) a panel shows the paper's numbers or a description of its
figure, the words "not run in this build" and the exact command that would produce it.

`NEEDS` lists, per figure, the analysis, the experiment rows and the arguments; ``compute``
(``python -m robustbook.figures <figure or experiment keys> --profile cpu``) runs them on
trained runs while their weights exist (``--train`` trains missing runs first).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from . import analysis as analysis_mod
from . import data as data_mod
from . import device as device_mod
from . import evaluate as evaluate_mod
from . import paper as paper_mod
from . import presets
from . import results as results_mod
from . import runs as runs_mod

__all__ = ["Panel", "Need", "NEEDS", "NOT_RUN", "compute", "find", "PANELS", "panels",
           "fpr_figure2", "fpr_figure3", "fpr_figure4", "fpr_table4", "fpr_attention", "fpr_lambda",
           "fpr_table5", "fpr_ijcai_table1", "fpr_ijcai_table2", "attack_curves",
           "aelf_figure1", "aelf_sweeps", "aelf_figure2", "aelf_figure3", "aelf_figure4", "aelf_figure6",
           "aelf_figure5", "aelf_table4", "aelf_table5", "aelf_table6",
           "rlfat_figure1", "rlfat_figure2", "rlfat_figure3", "rlfat_table2", "rlfat_table1a", "rlfat_table1c"]

NOT_RUN = "not run in this build"
DEFAULT_PROFILE = "cpu"

_PAPER_COLOR, _OURS_COLOR = "#d62728", "#1f77b4"
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")


# =========================================================================== the panel
@dataclass
class Panel:
    """What the book shows for one paper figure or table."""

    key: str
    title: str
    caption: str
    """Markdown: the paper's value or figure, ours, the runs behind it, the profile."""
    figures: List[Any] = field(default_factory=list)
    tables: List[Any] = field(default_factory=list)
    runs: List[str] = field(default_factory=list)
    """Run ids whose records are drawn."""
    from_data: bool = False
    """True when at least one of our measurements is drawn; False = the paper only."""
    command: Optional[str] = None
    """The command that produces what is missing (None when nothing is)."""

    def markdown(self) -> str:
        return f"### {self.title}\n\n{self.caption}"

    def show(self, heading: bool = False) -> None:
        """Display the caption (with the title as a heading when `heading`; the book's notebooks
        carry their own headings), the figures and the tables."""
        from IPython.display import HTML, Markdown, display

        from . import report

        display(Markdown(self.markdown() if heading else self.caption))
        for fig in self.figures:
            display(fig)
        for t in self.tables:
            if hasattr(report, "frame_html"):
                display(HTML(report.frame_html(t, max_cols=8)))
            else:
                display(_styled(t))

    def _ipython_display_(self) -> None:
        self.show()


def _styled(df):
    """A DataFrame without its index column (the first column names the row)."""
    try:
        return df.style.hide(axis="index")
    except Exception:  # pragma: no cover - very old pandas
        return df


def _missing(what: str, command: str, why: str = "", campaign: bool = False) -> str:
    """'Ours: not run' with what is missing and the command that produces it (in a code span; with
    `campaign`, the campaign named after it as the other way)."""
    return (f"**Ours: {NOT_RUN}** ({what}{'; ' + why if why else ''}). To produce it: `{command}`"
            + (_campaign_hint() if campaign else ""))


def _campaign_hint() -> str:
    return " (or `python -m robustbook.campaign`, which stores it after each run)" \
        if importlib.util.find_spec("robustbook.campaign") else ""


def _fmt(v: Optional[float], digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{v:.{digits}f}"


def _mean_std(values: Sequence[float]) -> Tuple[Optional[float], Optional[float]]:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return None, None
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else None)


def _fmt_ms(values: Sequence[float], digits: int = 1) -> str:
    """'41.2 ± 0.8 (3 seeds)', '41.2 (1 seed)' or '—'."""
    mean, std = _mean_std(values)
    if mean is None:
        return "—"
    n = sum(1 for v in values if v is not None and math.isfinite(float(v)))
    return results_mod.fmt_mean_spread(mean, std, digits) + f" ({n} seed{'s' if n != 1 else ''})"


def _runs_line(ids: Sequence[str]) -> str:
    ids = list(dict.fromkeys(ids))
    return "runs: " + (", ".join(f"`{i}`" for i in ids) if ids else "none")


def _profile_line(profile: str, key: Optional[str] = None) -> str:
    if profile == "paper":
        return "profile **paper** (the paper's settings)"
    line = f"profile **{profile}**: not the paper's setting"
    if key and key in presets.EXPERIMENTS:
        dev = [d for d in presets.get(key).deviations(profile) if not d.startswith("why")]
        if dev:
            line += " (" + "; ".join(f"`{d}`" for d in dev[:6]) + ("; …" if len(dev) > 6 else "") + ")"
    return line


# =========================================================================== what each figure needs
@dataclass(frozen=True)
class Row:
    """An argument that names another row of the same experiment (same seed), e.g. the
    naturally trained classifier of FP&R Table 4."""

    label: str


@dataclass(frozen=True)
class Need:
    """Analysis `analysis` with `kwargs` on rows `rows` of experiment `experiment`."""

    figure: str
    experiment: str
    rows: Tuple[str, ...]
    analysis: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    seeds: Optional[Tuple[int, ...]] = (0,)
    """Seeds analysed by `compute` (None = every seed of the profile); `find` reads every
    seed that has the analysis stored."""


_FPR_ROWS = ("Madry et al. (2017)", "Ours (AT-att-reg)")
_AELF_ROWS = ("ST", "AT", "JT", "AELFs")
_RLFAT_ROWS = ("PGDAT", "TRADES", "RLFAT_P", "RLFAT_T")

NEEDS: Tuple[Need, ...] = (
    Need("fpr_figure2", "fpr_table2", ("AT-att-reg", "AT-att"), "attention_rank_curve",
         {"n_train": 1000, "n_test": 1000}),
    Need("fpr_figure3", "fpr_table2", ("AT-att-reg", "AT-att"), "attention_maps", {"n_images": 8}),
    Need("fpr_figure4", "fpr_table4", _FPR_ROWS, "gradient_maps", {"n_images": 8}),
    Need("fpr_table4", "fpr_table4", _FPR_ROWS, "gradient_map_accuracy",
         {"classifier": Row("natural (classifier)")}, seeds=None),
    Need("fpr_attention", "fpr_attention", ("natural, non-linear attention",), "attention_comparison",
         {"other": Row("natural, linear attention"), "n_images": 8}, seeds=None),
    Need("aelf_figure2", "aelf_table2", ("ST", "AT"), "normalized_gradient", {"digits": tuple(range(10))}),
    Need("aelf_figure3", "aelf_table2", _AELF_ROWS, "shift_sweep", {}, seeds=None),
    Need("aelf_figure4", "aelf_table2", _AELF_ROWS, "gradient_signs", {"digits": (0, 1, 2, 3)}),
    Need("aelf_figure6", "aelf_table6", _AELF_ROWS, "gradient_signs", {"digits": (0, 1, 2, 3)}),
    Need("rlfat_figure3", "rlfat_table1b", _RLFAT_ROWS, "smoothgrad", {"n_images": 6}),
    Need("rlfat_table2", "rlfat_table1b", _RLFAT_ROWS, "loss_sensitivity", {}, seeds=None),
)


def _needs(figure: str) -> List[Need]:
    return [n for n in NEEDS if n.figure == figure]


def _configs(key: str, profile: str) -> List[Tuple[str, Any]]:
    return presets.get(key).configs(profile)


def _cfg_of(key: str, profile: str, label: str, seed: int):
    for lab, cfg in _configs(key, profile):
        if lab == label and cfg.seed == seed:
            return cfg
    raise KeyError(f"{key} at {profile}: no row {label!r} with seed {seed}")


def _resolve(need: Need, profile: str, seed: int) -> Dict[str, Any]:
    return {k: (_cfg_of(need.experiment, profile, v.label, seed) if isinstance(v, Row) else v)
            for k, v in need.kwargs.items()}


@dataclass
class Found:
    """One stored analysis of one run."""

    label: str
    seed: int
    run_id: str
    arrays: Dict[str, np.ndarray]
    meta: Dict[str, Any]
    exact: bool
    """True when stored with exactly the arguments of `NEEDS` (else the newest of that analysis)."""


def _newest(folder: Path, name: str) -> Optional[str]:
    """The newest stored analysis `name` of run `folder` that measured its present weights."""
    best, best_t = None, ""
    for p in sorted((folder / "analysis").glob(f"{name}-*.json")):
        try:
            doc = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if analysis_mod.stale_reason(folder, doc):
            continue
        created = doc.get("meta", {}).get("created", "")
        if created >= best_t:
            best, best_t = p.stem, created
    return best


def find(need: Need, profile: str, root: Optional[Path] = None) -> List[Found]:
    """Every stored instance of `need` at `profile` (all seeds), in row then seed order: the one
    stored with `need`'s arguments when present, else the newest analysis of that name."""
    root = Path(root or runs_mod.runs_root())
    out = []
    for label, cfg in _configs(need.experiment, profile):
        if label not in need.rows:
            continue
        folder = runs_mod.run_dir(cfg, root)
        adir = folder / "analysis"
        if not adir.is_dir():
            continue
        try:
            stored = analysis_mod.analysis_name(need.analysis, **_resolve(need, profile, cfg.seed))
        except KeyError:
            stored = None
        exact = stored is not None and analysis_mod.is_current(folder, stored)
        name = stored if exact else _newest(folder, need.analysis)
        if name is None:
            continue
        doc = analysis_mod.load_stored(folder, name)
        out.append(Found(label, cfg.seed, folder.name, doc["arrays"], doc["meta"], exact))
    order = {r: i for i, r in enumerate(need.rows)}
    return sorted(out, key=lambda f: (order[f.label], f.seed))


def _not_stored(figure: str, title: str, paper: str, what: str, profile: str) -> "Panel":
    """The panel of a figure whose analysis is not stored yet: the paper's description, "not run
    in this build", and the command that computes it."""
    cmd = _figure_command(figure, profile)
    return Panel(figure, title, paper + "\n\n" + _missing(what, cmd, campaign=True), command=cmd)


def _by_rows(found, need) -> list:
    """One stored analysis per row of `need`, in the figure's row order (rows not stored are left out)."""
    return [next(f for f in found if f.label == lab) for lab in need.rows if any(f.label == lab for f in found)]


def _figure_command(figure: str, profile: str) -> str:
    return f"python -m robustbook.figures {figure} --profile {profile} --train"


def compute(names: Sequence[str], profile: str, train: bool = False, root: Optional[Path] = None,
            progress: bool = True) -> List[Tuple[str, str, str]]:
    """Run the analyses behind figures (or every figure of experiments) `names` at `profile` on
    runs whose weights exist; `train=True` trains missing runs first (cached like any run).
    Returns (figure, run id, 'stored' | 'cached' | reason skipped) per run."""
    needs = [n for n in NEEDS if n.figure in names or n.experiment in names] if names else list(NEEDS)
    unknown = set(names) - {n.figure for n in NEEDS} - {n.experiment for n in NEEDS}
    if unknown:
        raise ValueError(f"no figure or experiment {sorted(unknown)} in NEEDS; known figures "
                         f"{sorted({n.figure for n in NEEDS})}")
    root = Path(root or runs_mod.runs_root())
    done = []
    for need in needs:
        seeds = need.seeds
        for label, cfg in _configs(need.experiment, profile):
            if label not in need.rows or (seeds is not None and cfg.seed not in seeds):
                continue
            kw = _resolve(need, profile, cfg.seed)
            dependencies = [cfg] + [v for v in kw.values() if hasattr(v, "run_id")]
            stored = analysis_mod.analysis_name(need.analysis, **kw)
            folder = runs_mod.run_dir(cfg, root)
            if not (folder / "model.pt").exists() and analysis_mod.is_current(folder, stored):
                # finished on record (a fresh clone): the stored analysis is what training would give
                done.append((need.figure, cfg.run_id, "cached"))
                continue
            if not train and any(not (runs_mod.run_dir(c, root) / "model.pt").exists() for c in dependencies):
                done.append((need.figure, cfg.run_id, "skipped: no weights (train it, or pass --train)"))
                continue
            run = runs_mod.train(cfg, root=root, progress=progress) if train else runs_mod.load_run(cfg, root)
            for other in dependencies[1:]:
                if train:
                    runs_mod.train(other, root=root, progress=progress)
            cached = analysis_mod.is_current(run, stored)
            analysis_mod.analyse(run, need.analysis, **kw)
            done.append((need.figure, run.id, "cached" if cached else "stored"))
            if progress:
                print(f"[figures] {need.figure}: {need.analysis} on {label} seed {cfg.seed} ({run.id}) "
                      f"{'cached' if cached else 'stored'}", flush=True)
    return done


# =========================================================================== drawing helpers
_LUTS: Dict[str, np.ndarray] = {}


def _lut(scale) -> np.ndarray:
    """256 x 3 uint8 lookup table of a plotly colorscale name or list."""
    key = json.dumps(scale)
    if key not in _LUTS:
        from plotly.colors import sample_colorscale, unlabel_rgb

        cols = sample_colorscale(scale, list(np.linspace(0, 1, 256)), colortype="rgb")
        _LUTS[key] = np.array([unlabel_rgb(c) for c in cols], dtype=float).round().clip(0, 255).astype(np.uint8)
    return _LUTS[key]


_DIVERGING = [[0.0, "rgb(0,200,0)"], [0.5, "rgb(0,0,0)"], [1.0, "rgb(230,0,0)"]]  # AELF: green -, red +


def _colorize(a: np.ndarray, scale="Viridis", lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    """H x W values -> H x W x 3 uint8 through a colorscale (lo..hi mapped to its ends)."""
    a = np.nan_to_num(np.asarray(a, dtype=float), nan=lo)
    idx = ((a - lo) / (hi - lo if hi > lo else 1.0) * 255).round().clip(0, 255).astype(int)
    return _lut(scale)[idx]


def _rgb(img: np.ndarray) -> np.ndarray:
    """C x H x W (uint8 or float in [0, 1]) -> H x W x 3 uint8."""
    a = np.asarray(img)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0, 1) * 255).round().astype(np.uint8)
    a = np.moveaxis(a, 0, -1) if a.ndim == 3 else a[..., None]
    return np.repeat(a, 3, axis=-1) if a.shape[-1] == 1 else a


def _upsample(a: np.ndarray, size: int) -> np.ndarray:
    f = max(1, size // a.shape[-1])
    return np.kron(a, np.ones((f, f)))


def _grid(rows: Sequence[Tuple[str, Sequence[np.ndarray]]], col_titles: Optional[Sequence[str]] = None,
          title: str = "", size: int = 95):
    """A plotly grid of H x W x 3 uint8 images: one row per (row title, images)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    n_rows, n_cols = len(rows), max(len(r[1]) for r in rows)
    fig = make_subplots(rows=n_rows, cols=n_cols, column_titles=list(col_titles) if col_titles else None,
                        row_titles=[r[0] for r in rows], horizontal_spacing=0.008, vertical_spacing=0.02)
    for i, (_, imgs) in enumerate(rows):
        for j, img in enumerate(imgs):
            fig.add_trace(go.Image(z=img, hoverinfo="skip"), row=i + 1, col=j + 1)
    fig.update_xaxes(visible=False).update_yaxes(visible=False)
    fig.update_annotations(font_size=11)
    fig.update_layout(title=dict(text=title), height=n_rows * size + 80, width=min(n_cols * size + 160, 900),
                      margin=dict(l=5, r=120, t=70, b=5))
    return fig


def _slider_bars(steps: Sequence[Mapping[str, Any]], title: str, prefix: str, ytitle: str = "accuracy (%)"):
    """Bars of ours (error bar = std over seeds) with the paper's values as markers, one slider
    step per entry of `steps` ({'label', 'title', 'x', 'ours', 'std', 'paper', 'hover'}). Only
    the step's traces are visible; the title follows the slider (`title.text`)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, s in enumerate(steps):
        fig.add_trace(go.Bar(x=s["x"], y=s["ours"], name="ours", visible=i == 0, marker_color=_OURS_COLOR,
                             error_y=dict(type="data", array=[v or 0 for v in s["std"]]),
                             hovertext=s.get("hover"), hoverinfo="text+y" if s.get("hover") else "x+y",
                             showlegend=True))
        fig.add_trace(go.Scatter(x=s["x"], y=s["paper"], name="paper", mode="markers", visible=i == 0,
                                 marker=dict(symbol="diamond", size=11, color=_PAPER_COLOR)))
    sl = []
    for i, s in enumerate(steps):
        vis = [False] * (2 * len(steps))
        vis[2 * i] = vis[2 * i + 1] = True
        sl.append(dict(label=s["label"], method="update", args=[{"visible": vis}, {"title.text": s["title"]}]))
    fig.update_layout(title=dict(text=steps[0]["title"] if steps else title), yaxis_title=ytitle, height=470,
                      barmode="group", legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"),
                      sliders=[dict(active=0, currentvalue=dict(prefix=prefix), steps=sl, pad=dict(t=90))]
                      if len(steps) > 1 else [], margin=dict(b=40))
    fig.update_xaxes(tickangle=-30)
    fig.update_yaxes(rangemode="tozero")
    return fig


# =========================================================================== result tables
_COLLECTED: Dict[tuple, Tuple[tuple, dict]] = {}


def _fingerprint(key: str, profile: str, root: Path) -> tuple:
    """What `collect` reads from the run store, as (file, mtime) pairs: a changed record (a new
    epoch, a new evaluation) invalidates the cached table."""
    out = []
    for _, cfg in _configs(key, profile):
        folder = runs_mod.run_dir(cfg, root)
        for p in [folder / "metrics.jsonl", *sorted((folder / "eval").glob("*.json"))]:
            try:
                out.append((str(p), p.stat().st_mtime_ns))
            except OSError:
                pass
    spec = results_mod.TABLES.get(key)
    return tuple(out) + (repr(spec),)


def collect(key: str, profile: str, root: Optional[Path] = None) -> dict:
    """`results.collect(key, profile)` (cached while the records it reads are unchanged: several
    panels read the same table)."""
    root = Path(root or runs_mod.runs_root())
    ident = (key, profile, str(root))
    fp = _fingerprint(key, profile, root)
    hit = _COLLECTED.get(ident)
    if hit and hit[0] == fp:
        return hit[1]
    table = results_mod.collect(key, profile, root=root)
    _COLLECTED[ident] = (fp, table)
    return table


def _evaluated(table: Mapping) -> List[str]:
    return [r["run_id"] for r in table["runs"] if r["state"] == "evaluated"]


def _cell_values(table: Mapping, label: str, col: str) -> List[float]:
    return list(table["cells"].get(label, {}).get(col, {}).get("seeds", {}).values())


def _dataset_missing(key: str, profile: str) -> Optional[str]:
    """The dataset of experiment `key` when no local archive exists (offline build), else None."""
    cfgs = _configs(key, profile)
    ds = cfgs[0][1].dataset if cfgs else None
    return ds if ds and data_mod.locate(ds) is None else None


def _reproduce_command(key: str, profile: str) -> str:
    return f"python -m robustbook.reproduce {key} --profile {profile}"


def _paper_frame_with_ours(key: str, table: Optional[Mapping], ours_label: str):
    """The paper's table (rows = methods) with our mean ± std (seeds) under each column."""
    import pandas as pd

    d = paper_mod.load(key)
    rows = []
    for r in d["rows"]:
        label = r.get("label", r["method"])
        row = {"method": label}
        for col in d["columns"]:
            row[f"{col} · paper"] = _fmt(r["values"][col])
            if table is not None:
                row[f"{col} · {ours_label}"] = _fmt_ms(_cell_values(table, label, col))
        rows.append(row)
    return pd.DataFrame(rows)


def table_panel(key: str, profile: str = DEFAULT_PROFILE, title: Optional[str] = None,
                root: Optional[Path] = None, note: str = "") -> Panel:
    """A results table of the papers: paper next to ours where runs were evaluated, else the
    paper's numbers, "not run in this build" and the command."""
    d = paper_mod.load(key)
    title = title or f"{d['paper']} {d['source'].split(' ', 1)[1]}: {d['title']}"
    missing_ds = _dataset_missing(key, profile) if key in presets.EXPERIMENTS else None
    table = None
    if key in presets.EXPERIMENTS and not missing_ds:
        table = collect(key, profile, root)
    ids = _evaluated(table) if table else []
    lines = [f"Paper: {d['paper']}, {d['source']} (unit: {d['unit']})."]
    if note:
        lines.append(note)
    if ids:
        lines.append(f"Ours: accuracy in % as mean ± std over the evaluated seeds; {_profile_line(profile, key)}; "
                     f"{len(ids)} of {len(table['runs'])} runs evaluated; {_runs_line(ids)}.")
        command = None if table["complete"] else _reproduce_command(key, profile)
        if command:
            lines.append(f"Missing runs: `{command}`.")
    else:
        command = _reproduce_command(key, profile)
        why = (f"{missing_ds.upper()} is not available offline: no local archive (torchvision downloads it "
               "on first use with internet)") if missing_ds else ""
        if key not in presets.EXPERIMENTS:
            why, command = "no experiment for it in `robustbook.presets`", "—"
        lines.append(_missing("no evaluated runs at this profile", command, why))
    return Panel(key, title, "\n\n".join(lines), tables=[_paper_frame_with_ours(key, table if ids else None, "ours")],
                 runs=ids, from_data=bool(ids), command=command)


# =========================================================================== FP&R
def fpr_figure2(profile: str = DEFAULT_PROFILE, root: Optional[Path] = None) -> Panel:
    """FP&R Figure 2: mean attention weight against the robustness rank of the 64 local
    features (rank 0 = most robust), training and test sets."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    need = _needs("fpr_figure2")[0]
    found = find(need, profile, root)
    title = "FP&R Figure 2: attention weight against feature robustness"
    paper = ("Paper (figure only, no numbers printed): on CIFAR-10, train (left) and test (right), the mean "
             "attention weight falls with the robustness rank; the most robust local features (rank 0) get the "
             "largest weights.")
    if not found:
        return _not_stored("fpr_figure2", title, paper,
                           f"no stored `attention_rank_curve` for {', '.join(need.rows)} of `{need.experiment}`", profile)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("training set", "test set"), shared_yaxes=True)
    stats = []
    for i, f in enumerate(found):
        color = _PALETTE[i % len(_PALETTE)]
        for j, split in enumerate(("train", "test")):
            curve = f.arrays[f"curve_{split}"]
            fig.add_trace(go.Scatter(x=np.arange(len(curve)), y=curve, mode="lines", line=dict(color=color),
                                     name=f"{f.label}, seed {f.seed}", legendgroup=f"{i}", showlegend=j == 0,
                                     hovertemplate="rank %{x}: %{y:.4f}<extra>" + f"{f.run_id}</extra>"),
                          row=1, col=j + 1)
            k = max(1, len(curve) // 8)
            stats.append(f"{f.label} seed {f.seed}, {split}: top-{k} ranks {np.mean(curve[:k]):.4f} vs "
                         f"bottom-{k} {np.mean(curve[-k:]):.4f}")
        n = len(found[0].arrays["curve_test"])
    for j in (1, 2):
        fig.add_hline(y=1 / n, line_dash="dot", line_color="grey", row=1, col=j)
    fig.update_xaxes(title_text="robustness rank (0 = most robust)")
    fig.update_yaxes(title_text="mean attention weight", row=1, col=1)
    fig.update_layout(title=dict(text=title), height=430, legend=dict(orientation="h", y=-0.25))
    m = found[0].meta
    cap = (f"{paper}\n\nOurs: {', '.join(sorted({f.label for f in found}))} ({profile_of(found, profile)}); "
           f"robustness = ||l_n(x) - l_n(x')||₂ with x' = PGD(eps {m['attack']['eps']:.4g}, "
           f"{m['attack']['steps']} steps); images: {m['images']['train']} / {m['images']['test']}. "
           f"Dotted line = uniform weight 1/{n}. Mean weight of the most vs least robust ranks: "
           + "; ".join(stats) + f". {_runs_line([f.run_id for f in found])}.")
    return Panel("fpr_figure2", title, cap, figures=[fig], runs=[f.run_id for f in found], from_data=True)


def profile_of(found: Sequence[Found], profile: str) -> str:
    return f"profile **{profile}**" + ("" if profile == "paper" else ", not the paper's setting")


def fpr_figure3(profile: str = DEFAULT_PROFILE, root: Optional[Path] = None) -> Panel:
    """FP&R Figure 3: input images and the attention maps at residual block 4."""
    need = _needs("fpr_figure3")[0]
    found = find(need, profile, root)
    title = "FP&R Figure 3: attention maps at residual block 4"
    paper = ("Paper (figure only): CIFAR-10 test images (top) and the attention maps of the model at residual "
             "block 4 (bottom), which \"focus sharply on the objects\" (heads, legs, wings).")
    if not found:
        return _not_stored("fpr_figure3", title, paper,
                           f"no stored `attention_maps` of `{need.experiment}`", profile)
    shown = [f for f in found if f.seed == found[0].seed] or found[:1]
    imgs = shown[0].arrays["images"]
    size = imgs.shape[-1]
    rows = [("input", [_rgb(x) for x in imgs])]
    for f in shown:
        att = f.arrays["attention"]
        rows.append((f"{f.label}", [_colorize(_upsample(a / max(a.max(), 1e-12), size), "Viridis") for a in att]))
    fig = _grid(rows, title=title)
    cap = (f"{paper}\n\nOurs: {', '.join(f.label for f in shown)}, seed {shown[0].seed} "
           f"({profile_of(found, profile)}); "
           f"each {att.shape[-2]}x{att.shape[-1]} map (sums to 1) is scaled to its maximum and shown over the "
           f"image grid (brighter = more weight); test images {shown[0].meta.get('indices')}. "
           f"{_runs_line([f.run_id for f in shown])}.")
    return Panel("fpr_figure3", title, cap, figures=[fig], runs=[f.run_id for f in shown], from_data=True)


def fpr_figure4(profile: str = DEFAULT_PROFILE, root: Optional[Path] = None) -> Panel:
    """FP&R Figure 4: gradient maps of Madry et al. and of our model (clipped to +-3 std and
    rescaled; a button switches to min-max rescaling)."""
    need = _needs("fpr_figure4")[0]
    found = find(need, profile, root)
    title = "FP&R Figure 4: gradient maps of Madry et al. and of AT-att-reg"
    paper = ("Paper (figure only): CIFAR-10 images (top), the gradient maps of Madry et al. (middle) and of "
             "\"our model\" (bottom): the cross-entropy gradient w.r.t. the input, clipped to ±3 standard "
             "deviations and rescaled to [0, 1]; both align with the image, ours more closely.")
    if not found:
        return _not_stored("fpr_figure4", title, paper,
                           f"no stored `gradient_maps` of `{need.experiment}`", profile)
    shown = []
    for label in need.rows:
        hits = [f for f in found if f.label == label]
        if hits:
            shown.append(hits[0])
    figs = []
    for kind in ("clipped", "unclipped"):
        rows = [("input", [_rgb(x) for x in shown[0].arrays["images"]])]
        rows += [(f"{f.label.split(' (')[0]} s{f.seed}", [_rgb(g) for g in f.arrays[kind]]) for f in shown]
        figs.append(_grid(rows, title=f"{title} ({'±3 std clipped' if kind == 'clipped' else 'min-max rescaled'})"))
    cap = (f"{paper}\n\nOurs: {', '.join(f'{f.label} (seed {f.seed})' for f in shown)}; "
           f"{profile_of(found, profile)}. First figure clipped as in the paper, second min-max rescaled "
           f"(the \"without clipping\" maps of Table 4). {_runs_line([f.run_id for f in shown])}.")
    return Panel("fpr_figure4", title, cap, figures=figs, runs=[f.run_id for f in shown], from_data=True)


def fpr_table4(profile: str = DEFAULT_PROFILE, root: Optional[Path] = None) -> Panel:
    """FP&R Table 4: a naturally trained ResNet classifying the gradient maps."""
    import pandas as pd

    need = _needs("fpr_table4")[0]
    found = find(need, profile, root)
    title = "FP&R Table 4: classification accuracy of gradient maps"
    d = paper_mod.load("fpr_table4")
    cols = d["columns"]  # 'With clipping, Train data', ...
    rows = []
    for r in d["rows"]:
        label = r.get("label", r["method"])
        hits = [f for f in found if f.label == label]
        row = {"method": label}
        for col in cols:
            i = 0 if col.startswith("With clipping") else 1
            j = 0 if "Train" in col else 1
            row[f"{col} · paper"] = _fmt(r["values"][col])
            row[f"{col} · ours"] = _fmt_ms([100 * float(f.arrays["accuracy"][i][j]) for f in hits])
        rows.append(row)
    df = pd.DataFrame(rows)
    clf = list({f.meta.get("classifier_run"): 100 * f.meta["classifier_test_accuracy"] for f in found
                if "classifier_test_accuracy" in f.meta}.values())  # one value per classifier run
    paper_clf = d["setting"].get("classifier_test_accuracy")
    lines = [f"Paper: {d['source']}; classifier = the narrow ResNet trained naturally "
             f"({_fmt(paper_clf)}% natural test accuracy)."]
    if found:
        clf_runs = ", ".join(sorted({f"`{f.meta.get('classifier_run')}`" for f in found}))
        lines.append(f"Ours: accuracy in % (mean ± std over seeds) of our naturally trained classifier "
                     f"({_fmt_ms(clf)} natural test accuracy; runs {clf_runs}) on the "
                     f"gradient maps; {_profile_line(profile, 'fpr_table4')}; images: "
                     f"{found[0].meta.get('images', {}).get('test', '')}. {_runs_line([f.run_id for f in found])}.")
        command = None
    else:
        command = _figure_command("fpr_table4", profile)
        lines.append(_missing("no stored `gradient_map_accuracy` of `fpr_table4`", command, campaign=True))
    return Panel("fpr_table4", title, "\n\n".join(lines), tables=[df], runs=[f.run_id for f in found],
                 from_data=bool(found), command=command)


def fpr_attention(profile: str = DEFAULT_PROFILE, root: Optional[Path] = None) -> Panel:
    """FP&R (IJCAI) section 4.3: linear vs non-linear attention under natural training."""
    import pandas as pd

    need = _needs("fpr_attention")[0]
    found = find(need, profile, root)
    title = "FP&R (IJCAI) section 4.3: non-linear vs linear attention"
    d = paper_mod.load("fpr_attention")
    by_kind: Dict[str, List[float]] = {"nonlinear": [], "linear": []}
    pairs = []
    for f in found:
        for kind, acc in zip(f.meta.get("kinds", []), f.arrays["accuracy"]):
            by_kind.setdefault(kind, []).append(100 * float(acc))
        pairs.append(f.meta.get("runs", [f.run_id]))
    rows = [{"attention": "non-linear (FP&R)", "paper": _fmt(d["rows"][0]["values"]["Natural"]),
             "ours": _fmt_ms(by_kind["nonlinear"])},
            {"attention": "linear (Jetley et al.)", "paper": _fmt(d["rows"][1]["values"]["Natural"]),
             "ours": _fmt_ms(by_kind["linear"])}]
    figs = []
    ids = [i for p in pairs for i in p]
    if found:
        f = found[0]
        size = f.arrays["images"].shape[-1]
        names = dict(zip(("this", "other"), f.meta.get("kinds", ["this", "other"])))
        grid = [("input", [_rgb(x) for x in f.arrays["images"]])]
        for part in ("this", "other"):
            grid.append((f"{names[part]}", [_colorize(_upsample(a / max(a.max(), 1e-12), size))
                                            for a in f.arrays[f"attention_{part}"]]))
        figs.append(_grid(grid, title=f"Attention maps of the two naturally trained models (seed {f.seed})"))
        cap = (f"Paper: {d['source']}: natural test accuracy of naturally trained narrow ResNets with the two "
               f"attention heads. Ours: natural test accuracy in % (mean ± std over seeds), "
               f"{_profile_line(profile, 'fpr_attention')}; {f.meta.get('images')}. {_runs_line(ids)}.")
        command = None
    else:
        command = _figure_command("fpr_attention", profile)
        cap = (f"Paper: {d['source']}: natural test accuracy of naturally trained narrow ResNets with the two "
               f"attention heads.\n\n" + _missing("no stored `attention_comparison` of `fpr_attention`",
                                                   command, campaign=True))
    return Panel("fpr_attention", title, cap, figures=figs, tables=[pd.DataFrame(rows)], runs=ids,
                 from_data=bool(found), command=command)


def _lambda_of(key: str, label: str) -> Optional[float]:
    lam = paper_mod.load(key)["setting"].get("lambda", {})
    return float(lam[label]) if isinstance(lam, dict) and label in lam else None


def fpr_lambda(profile: str = DEFAULT_PROFILE, experiment: str = "fpr_table2",
               root: Optional[Path] = None) -> Panel:
    """FP&R's λ question: the conference (AT-reg 0.1, AT-att-reg 0.01) and IJCAI (1, 0.1) values,
    our rows of `experiment` at every λ the presets have, browsed by a slider."""
    ijcai = {"fpr_table2": "fpr_ijcai_table2", "fpr_table1": "fpr_ijcai_table1"}[experiment]
    table = collect(experiment, profile, root)
    eq = paper_mod.load(ijcai)["setting"].get("column_equivalents", {})
    cols = table["columns"]
    to_ijcai = {v: k for k, v in eq.items() if v in cols}
    if experiment == "fpr_table1":
        to_ijcai = {"Natural": "Natural", "White box": "White box", "Black box": "Transfer"}
    cfg_of = {lab: cfg for lab, cfg in _configs(experiment, profile) if cfg.seed == 0}
    figs, notes, ids = [], [], []
    for method, name in (("at_reg", "AT-reg"), ("at_att_reg", "AT-att-reg")):
        ours = {float(c.lam): lab for lab, c in cfg_of.items() if c.method == method}
        papers = {}
        conf_lam, ij_lam = _lambda_of(experiment, name), _lambda_of(ijcai, name)
        if conf_lam is not None:
            papers[conf_lam] = ("conference", lambda col, n=name: paper_mod.value(experiment, n, col))
        if ij_lam is not None:
            papers.setdefault(ij_lam, ("IJCAI", lambda col, n=name: (paper_mod.value(ijcai, n, to_ijcai[col])
                                                                     if col in to_ijcai else None)))
        lams = sorted(set(ours) | set(papers))
        if not lams:
            continue
        steps = []
        for lam in lams:
            label = ours.get(lam)
            vals = [_cell_values(table, label, c) if label else [] for c in cols]
            ms = [_mean_std(v) for v in vals]
            src = papers.get(lam)
            pv = [src[1](c) if src else None for c in cols]
            if label:
                ids += [r for c in cols for r in table["cells"][label][c]["runs"].values()]
            have = bool(label) and any(vals)
            steps.append(dict(label=f"{lam:g}", x=cols, ours=[m for m, _ in ms], std=[s for _, s in ms], paper=pv,
                              hover=[f"{c}<br>seeds: {', '.join(f'{x:.1f}' for x in v) or NOT_RUN}"
                                     for c, v in zip(cols, vals)],
                              title=f"{name}, λ = {lam:g}: ours {'(' + label + ')' if have else NOT_RUN}; "
                                    f"paper {src[0] + ' version' if src else 'prints no row'}"))
            notes.append(f"{name} λ = {lam:g}: paper {src[0] + ' version' if src else '—'}; ours "
                         + (f"row `{label}`" if have else f"{NOT_RUN}" + (f" (row `{label}`)" if label else "")))
        figs.append(_slider_bars(steps, name, prefix=f"{name} λ = "))
    ids = [str(i) for i in ids]
    rows_missing = [n for n in notes if NOT_RUN in n]
    cap = ("The conference text trains AT-reg with λ = 0.1 and AT-att-reg with λ = 0.01; the IJCAI text says "
           "λ = 1 and 0.1 and prints the same AT-reg numbers (data/paper notes). Slide through λ: our mean "
           "(bars, error bar = std over seeds, hover = per-seed values) against the paper's value (diamonds). "
           + "; ".join(notes) + f". {_profile_line(profile, experiment)}. {_runs_line(ids)}.")
    command = None
    if rows_missing:
        command = _reproduce_command(experiment, profile)
        cap += (f"\n\nFor the λ values marked {NOT_RUN}: `{command}` (a λ without a row needs one in "
                f"`presets.{experiment}` first).")
    return Panel(f"{experiment}_lambda", f"FP&R: which λ? ({experiment.replace('fpr_table', 'Table ')})", cap,
                 figures=figs, runs=list(dict.fromkeys(ids)), from_data=bool(ids), command=command)


def fpr_table5(profile: str = DEFAULT_PROFILE, root: Optional[Path] = None) -> Panel:
    return table_panel("fpr_table5", profile, "FP&R Table 5: CIFAR-100, narrow ResNet", root)


def _ijcai_panel(key: str, base: str, mapping: Mapping[str, str], profile: str, root: Optional[Path]) -> Panel:
    """An IJCAI table next to our rows of `base` trained with the IJCAI λ (matched by method and λ)."""
    import pandas as pd

    d = paper_mod.load(key)
    lam = d["setting"].get("lambda", {})
    table = collect(base, profile, root)
    cfg_of = {lab: cfg for lab, cfg in _configs(base, profile) if cfg.seed == 0}
    rows, ids, notes = [], [], []
    for r in d["rows"]:
        label = r.get("label", r["method"])
        want = lam.get(label)
        match = [lab for lab, c in cfg_of.items() if c.method == r.get("method_key")
                 and (want is None or math.isclose(float(c.lam), float(want)))]
        ours_label = match[0] if match else None
        row = {"method": label + (f" (λ = {want:g})" if want is not None else "")}
        for col in d["columns"]:
            row[f"{col} · paper"] = _fmt(r["values"][col])
            row[f"{col} · ours"] = _fmt_ms(_cell_values(table, ours_label, mapping[col])) if ours_label else NOT_RUN
        if ours_label:
            ids += list(table["cells"][ours_label][mapping[d['columns'][0]]]["runs"].values())
        else:
            notes.append(f"{label} with λ = {want:g}")
        rows.append(row)
    command = _reproduce_command(base, profile) if notes or not ids else None
    cap = (f"Paper: {d['source']} ({d['title']}). Ours: the rows of `{base}` trained with the same method and λ, "
           f"mean ± std over seeds; {_profile_line(profile, base)}. {_runs_line(ids)}.")
    if notes:
        cap += (f"\n\n**{NOT_RUN}**: {', '.join(notes)} (no such row in `presets.{base}` at this profile, or not "
                f"evaluated). Command once the row exists: `{command}`.")
    elif not ids:
        cap += f"\n\n{_missing('no evaluated runs', command)}"
    return Panel(key, f"FP&R (IJCAI) {d['source'].split(' ', 1)[1]}: {d['title']}", cap, tables=[pd.DataFrame(rows)],
                 runs=ids, from_data=bool(ids), command=command)


def fpr_ijcai_table1(profile: str = DEFAULT_PROFILE, root: Optional[Path] = None) -> Panel:
    return _ijcai_panel("fpr_ijcai_table1", "fpr_table1",
                        {"Natural": "Natural", "White box": "White box", "Transfer": "Black box"}, profile, root)


def fpr_ijcai_table2(profile: str = DEFAULT_PROFILE, root: Optional[Path] = None) -> Panel:
    eq = paper_mod.load("fpr_ijcai_table2")["setting"]["column_equivalents"]
    return _ijcai_panel("fpr_ijcai_table2", "fpr_table2", eq, profile, root)


# --------------------------------------------------------------------------- accuracy vs steps / eps
def _eval_docs(table: Mapping, root: Optional[Path]) -> List[Tuple[str, int, str, dict]]:
    root = Path(root or runs_mod.runs_root())
    out = []
    for r in table["runs"]:
        if r["state"] == "evaluated" and r.get("eval_file"):
            path = root / r["eval_file"]
            if path.exists():
                out.append((r["label"], r["seed"], r["run_id"], json.loads(path.read_text())))
    return out


def attack_curves(key: str, profile: str = DEFAULT_PROFILE, root: Optional[Path] = None) -> Panel:
    """Accuracy against the number of attack steps (every step count recorded in one PGD / CW
    run with `record_steps`) and against eps (clean, the suite's eps, the large-eps check),
    per row, mean over seeds; a dropdown picks the attack family."""
    import plotly.graph_objects as go

    table = collect(key, profile, root)
    docs = _eval_docs(table, root)
    title = f"{table['paper']} {table['table']}: accuracy against attack steps and eps"
    if not docs:
        cmd = _reproduce_command(key, profile)
        return Panel(f"{key}_attacks", title, _missing("no evaluated runs", cmd), command=cmd)
    fam: Dict[str, Dict[str, Dict[int, List[float]]]] = {}
    eps_pts: Dict[str, Dict[float, List[float]]] = {}
    for label, seed, run_id, doc in docs:
        for k, e in doc["results"].items():
            ev = e.get("evidence", {})
            if k == "clean":
                eps_pts.setdefault(label, {}).setdefault(0.0, []).append(100 * e["accuracy"])
                continue
            if "steps" not in ev or k.startswith("shift-"):
                continue
            if k == "check/large-eps" or (not k.startswith("transfer/") and ev.get("loss") == "ce"
                                          and ev["steps"] == evaluate_mod.LARGE_EPS_STEPS):
                eps_pts.setdefault(label, {}).setdefault(float(ev["eps"]), []).append(100 * e["accuracy"])
            if k.startswith("check/"):
                continue
            box = "black box (transfer)" if k.startswith("transfer/") else "white box"
            start = "" if ev.get("random_start", True) else ", no random start"
            name = f"{box}, {'CW' if ev.get('loss') == 'cw' else 'PGD'}{start}"
            fam.setdefault(name, {}).setdefault(label, {}).setdefault(int(ev["steps"]), []).append(100 * e["accuracy"])
    names = sorted(fam, key=lambda n: (n.startswith("black"), "CW" in n, n))  # white-box PGD first
    fig = go.Figure()
    vis_of = []
    for fi, name in enumerate(names):
        for li, (label, by_steps) in enumerate(fam[name].items()):
            xs = sorted(by_steps)
            ms = [_mean_std(by_steps[s]) for s in xs]
            fig.add_trace(go.Scatter(x=xs, y=[m for m, _ in ms], mode="lines+markers", name=label,
                                     visible=fi == 0, line=dict(color=_PALETTE[li % len(_PALETTE)]),
                                     error_y=dict(type="data", array=[s or 0 for _, s in ms]),
                                     hovertext=[f"{label}, {s} steps: {', '.join(f'{v:.1f}' for v in by_steps[s])}"
                                                for s in xs], hoverinfo="text"))
            vis_of.append(fi)
    buttons = [dict(label=n, method="update", args=[{"visible": [v == i for v in vis_of]},
                                                    {"title.text": f"{title}: {n}"}]) for i, n in enumerate(names)]
    fig.update_layout(title=dict(text=f"{title}: {names[0]}" if names else title), xaxis=dict(title="attack steps",
                      type="log"), yaxis_title="accuracy (%)", height=440,
                      updatemenus=[dict(buttons=buttons, x=1, xanchor="right", y=1.18, yanchor="top")]
                      if len(names) > 1 else [], legend=dict(orientation="h", y=-0.2))
    figs = [fig]
    if any(len(v) > 1 for v in eps_pts.values()):
        g = go.Figure()
        for li, (label, pts) in enumerate(eps_pts.items()):
            xs = sorted(pts)
            g.add_trace(go.Scatter(x=[x * 255 for x in xs], y=[_mean_std(pts[x])[0] for x in xs], mode="lines+markers",
                                   name=label, line=dict(color=_PALETTE[li % len(_PALETTE)])))
        g.update_layout(title=dict(text=f"{table['paper']} {table['table']}: accuracy against eps "
                                        f"(PGD {evaluate_mod.LARGE_EPS_STEPS} steps; 0 = clean)"),
                        xaxis_title="eps × 255", yaxis_title="accuracy (%)", height=400,
                        legend=dict(orientation="h", y=-0.2))
        figs.append(g)
    ids = [d[2] for d in docs]
    cap = (f"Every step count of a PGD or CW run is recorded in the same run (`record_steps`), so the curve is one "
           f"attack followed over its iterations; a flat curve after a few steps is the expected sign of a converged "
           f"attack. Mean over seeds (error bar = std; hover = per-seed values). The eps figure takes the clean "
           f"accuracy, the suite's PGD-{evaluate_mod.LARGE_EPS_STEPS} row where the suite has one, and the large-eps "
           f"check. The paper reports the table's step counts only. {_profile_line(profile, key)}. {_runs_line(ids)}.")
    return Panel(f"{key}_attacks", title, cap, figures=figs, runs=ids, from_data=True)


# =========================================================================== AELF
def _bars(table: Mapping, labels: Sequence[str], cols: Sequence[str], title: str, paper_key: Optional[str] = None):
    """Grouped bars of ours per column (error = std over seeds) with the paper's values as markers."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for ci, col in enumerate(cols):
        vals = [_cell_values(table, lab, col) for lab in labels]
        ms = [_mean_std(v) for v in vals]
        fig.add_trace(go.Bar(x=list(labels), y=[m for m, _ in ms], name=f"{col} (ours)", offsetgroup=str(ci),
                             marker_color=_PALETTE[ci % len(_PALETTE)],
                             error_y=dict(type="data", array=[s or 0 for _, s in ms]),
                             hovertext=[f"{lab}, {col}: seeds {', '.join(f'{x:.1f}' for x in v) or 'not run'}"
                                        for lab, v in zip(labels, vals)], hoverinfo="text+y"))
        pk = paper_key or table["key"]
        pv = []
        for lab in labels:
            try:
                pv.append(paper_mod.value(pk, lab, col))
            except KeyError:
                pv.append(None)
        fig.add_trace(go.Scatter(x=list(labels), y=pv, mode="markers", name=f"{col} (paper)", offsetgroup=str(ci),
                                 marker=dict(symbol="diamond", size=10, color=_PALETTE[ci % len(_PALETTE)],
                                             line=dict(color="black", width=1))))
    fig.update_layout(title=dict(text=title), barmode="group", yaxis_title="accuracy (%)", height=450,
                      legend=dict(orientation="h", y=-0.25), scattermode="group")
    fig.update_yaxes(rangemode="tozero")
    return fig


def aelf_figure1(profile: str = DEFAULT_PROFILE, root: Optional[Path] = None) -> Panel:
    """AELF Figure 1: the trade-off of CNN_B on CIFAR-10 across ST, AT and JT ratios (and TRADES λ)."""
    table = collect("aelf_table3", profile, root)
    labels = ["ST", "AT (Madry)", "JT 0.4:0.6", "JT 0.5:0.5", "JT 0.6:0.4",
              "TRADES beta=1", "TRADES beta=2", "TRADES beta=3"]
    title = "AELF Figure 1: the trade-off of CNN_B on CIFAR-10"
    fig = _bars(table, labels, ["N", "A*(5)"], title)
    ids = _evaluated(table)
    cap = ("Paper: natural (N) and PGD(0.031, 5, 0.01) accuracy (A*(5)) of ST, AT and JT at three clean:adversarial "
           "loss ratios: more clean weight buys natural accuracy and costs robustness. The figure prints no numbers; "
           "the diamonds are the same models' values in Table 3 (TRADES with its λ, called beta in our presets, "
           "from Table 3 too). Bars: ours, mean ± std over seeds (hover: per-seed values). "
           f"{_profile_line(profile, 'aelf_table3')}. {_runs_line(ids)}.")
    command = None
    if not ids:
        command = _reproduce_command("aelf_table3", profile)
        cap += "\n\n" + _missing("no evaluated runs of `aelf_table3`", command)
    return Panel("aelf_figure1", title, cap, figures=[fig], runs=ids, from_data=bool(ids), command=command)


def aelf_sweeps(profile: str = DEFAULT_PROFILE, root: Optional[Path] = None) -> Panel:
    """AELF Table 3 as sweeps: a slider over the clean:adversarial ratio (JT, JT*, AELFs at that
    ratio) and one over TRADES λ, ours against the paper."""
    table = collect("aelf_table3", profile, root)
    cols = table["columns"]
    figs = []

    def step(labels, lab_title, slider_label):
        xs, ours, std, paper, hover = [], [], [], [], []
        for lab in labels:
            for col in cols:
                v = _cell_values(table, lab, col)
                m, s = _mean_std(v)
                xs.append(f"{lab.split(' ')[0]} · {col}")
                ours.append(m)
                std.append(s)
                try:
                    paper.append(paper_mod.value("aelf_table3", lab, col))
                except KeyError:
                    paper.append(None)
                hover.append(f"{lab}, {col}: seeds {', '.join(f'{x:.1f}' for x in v) or NOT_RUN}")
        return dict(label=slider_label, title=lab_title, x=xs, ours=ours, std=std, paper=paper, hover=hover)

    ratios = ("0.4:0.6", "0.5:0.5", "0.6:0.4")
    figs.append(_slider_bars([step([f"{m} {r}" for m in ("JT", "JT*", "AELFs")], f"AELF Table 3 at ratio {r} "
                                   "(clean:adversarial)", r) for r in ratios],
                             "ratio", prefix="clean:adversarial = "))
    figs.append(_slider_bars([step([f"TRADES beta={b}"], f"TRADES λ = {b} (AELF Table 3)", b)
                              for b in ("1", "2", "3")],
                             "TRADES", prefix="TRADES λ = "))
    ids = _evaluated(table)
    cap = ("Slide through the clean:adversarial loss ratio (JT, JT* and AELFs trained at that ratio) and through "
           "TRADES' λ: our mean (bars, error bar = std over seeds, hover = per-seed values) against the paper's "
           f"Table 3 (diamonds). {_profile_line(profile, 'aelf_table3')}. {_runs_line(ids)}.")
    command = None
    if not ids:
        command = _reproduce_command("aelf_table3", profile)
        cap += "\n\n" + _missing("no evaluated runs of `aelf_table3`", command)
    return Panel("aelf_sweeps", "AELF Table 3 as sweeps: ratio and TRADES λ", cap, figures=figs, runs=ids,
                 from_data=bool(ids), command=command)


def aelf_figure2(profile: str = DEFAULT_PROFILE, root: Optional[Path] = None) -> Panel:
    """AELF Figure 2: normalized input gradients of the ST and AT models on MNIST."""
    need = _needs("aelf_figure2")[0]
    found = find(need, profile, root)
    title = "AELF Figure 2: normalized gradients of M_ST and M_AT"
    paper = ("Paper (figure only): MNIST digits and the normalized input gradient G/‖G‖₂ of the standard (M_ST) "
             "and adversarially trained (M_AT) CNN_B; red = positive, green = negative on black. M_AT's gradient "
             "follows the strokes (\"high-frequency shape information\") and covers less of the input than M_ST's.")
    if not found:
        return _not_stored("aelf_figure2", title, paper,
                           f"no stored `normalized_gradient` of `{need.experiment}`", profile)
    shown = _by_rows(found, need)
    rows = [("input", [_rgb(x) for x in shown[0].arrays["images"]])]
    for f in shown:
        rows.append((f"M_{f.label} s{f.seed}", [_colorize(g[0] if g.ndim == 3 else g, _DIVERGING, -1, 1)
                                               for g in f.arrays["normalized"]]))
    fig = _grid(rows, col_titles=[str(int(v)) for v in shown[0].arrays["labels"]], title=title)
    cap = (f"{paper}\n\nOurs: {', '.join(f'{f.label} (seed {f.seed})' for f in shown)}; the first test image of "
           f"each digit; G/‖G‖₂ scaled by its largest |value| (red +, green −, black 0). "
           f"{_profile_line(profile, need.experiment)}. {_runs_line([f.run_id for f in shown])}.")
    return Panel("aelf_figure2", title, cap, figures=[fig], runs=[f.run_id for f in shown], from_data=True)


def aelf_figure3(profile: str = DEFAULT_PROFILE, root: Optional[Path] = None, n_images: int = 6) -> Panel:
    """AELF Figure 3: (a) MNIST test digits shifted 8 of 32 pixels (drawn live from the data);
    (b) natural accuracy of M_ST and M_AT on the original and the four shifted test sets."""
    from . import transforms as T

    title = "AELF Figure 3: shifted MNIST"
    figs, lines = [], []
    try:
        test = data_mod.load("mnist", "test")
        x = T.to_size(test.x[:n_images], 32)
        rows = [("N", [_rgb(i.numpy()) for i in x])]
        rows += [(f"N({d[0].upper()})", [_rgb(i.numpy()) for i in T.shift(x, d, 8)]) for d in T.SHIFTS]
        figs.append(_grid(rows, title="(a) test digits and their shifts by 8 of 32 pixels", size=70))
        lines.append(f"(a) drawn now from {test.describe()} with `transforms.shift` (resized to 32x32 as AELF).")
    except (data_mod.DatasetNotFound, OSError) as e:
        lines.append(f"(a) MNIST is not available here ({e}); the paper shows 5 digits and their 4 shifts.")
    table = collect("aelf_table2", profile, root)
    cols = ["natural N", "natural N(L)", "natural N(R)", "natural N(U)", "natural N(D)"]
    figs.append(_bars(table, ["ST", "AT"], cols, "(b) natural accuracy on the shifted test sets: M_ST vs M_AT"))
    ids = [r["run_id"] for r in table["runs"] if r["state"] == "evaluated" and r["label"] in ("ST", "AT")]
    lines.append("(b) Paper: M_AT adapts worse to shifts than M_ST, above all up and down; the figure's bars are the "
                 "numbers of Table 2 (diamonds). Ours: mean ± std over seeds (hover: per-seed values), from the "
                 f"`aelf_mnist` evaluation; {_profile_line(profile, 'aelf_table2')}. {_runs_line(ids)}.")
    command = None
    if not ids:
        command = _reproduce_command("aelf_table2", profile)
        lines.append(_missing("no evaluated ST / AT runs of `aelf_table2`", command))
    need = _needs("aelf_figure3")[0]
    found = find(need, profile, root)
    if found:
        figs.append(_shift_sweep_figure(found, need.rows))
        ids += [f.run_id for f in found]
        lines.append("(c) Ours, not in the paper: natural accuracy against the shift size (the paper's sets are 8 of "
                     "32 pixels), per direction, mean over seeds (hover: per-seed values). Solid: zero-filled as our "
                     "shifted sets (what leaves the frame is lost); dashed: wrapped around (`torch.roll`, nothing "
                     "is lost). The paper does not say which it used; where the two part, a shifted set's error is "
                     f"the lost strip of the digit, not its new position. {_runs_line([f.run_id for f in found])}.")
    else:
        lines.append("(c) Ours: natural accuracy against the shift size, zero-filled and wrapped around: "
                     + _missing("no stored `shift_sweep` of `aelf_table2`", _figure_command("aelf_figure3", profile),
                                campaign=True))
    return Panel("aelf_figure3", title, "\n\n".join(lines), figures=figs, runs=ids, from_data=bool(ids),
                 command=command)


def _shift_sweep_figure(found: Sequence["Found"], rows: Sequence[str]):
    """One panel per row: accuracy (%) against the shift in pixels, a line per direction, solid
    zero-filled and dashed wrapped around, mean over the stored seeds."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    labels = [lab for lab in rows if any(f.label == lab for f in found)]
    fig = make_subplots(rows=1, cols=len(labels), shared_yaxes=True, subplot_titles=labels)
    for k, lab in enumerate(labels):
        mine = [f for f in found if f.label == lab]
        meta = mine[0].meta
        for fill, dash in (("zero", "solid"), ("wrap", "dash")):
            if f"accuracy_{fill}" not in mine[0].arrays:
                continue
            acc = np.stack([100.0 * np.asarray(f.arrays[f"accuracy_{fill}"]) for f in mine])  # seeds x dirs x px
            for i, d in enumerate(meta["directions"]):
                per_seed = acc[:, i, :]
                fig.add_trace(go.Scatter(
                    x=meta["pixels"], y=per_seed.mean(0), mode="lines+markers", name=f"{d}, {fill}",
                    legendgroup=f"{d}, {fill}", showlegend=k == 0,
                    line=dict(color=_PALETTE[i % len(_PALETTE)], dash=dash),
                    hovertext=[f"{lab}, {d} {p} px ({fill}): seeds "
                               + ", ".join(f"{v:.1f}" for v in per_seed[:, j]) for j, p in enumerate(meta["pixels"])],
                    hoverinfo="text+y"), row=1, col=k + 1)
        fig.add_vline(x=8, line=dict(color="grey", dash="dot", width=1), row=1, col=k + 1)
        fig.update_xaxes(title_text="shift (pixels of 32)", row=1, col=k + 1)
    fig.update_yaxes(title_text="natural accuracy (%)", row=1, col=1)
    fig.update_layout(title=dict(text="(c) ours: accuracy against the shift size, zero-filled vs wrapped around"),
                      height=420, legend=dict(orientation="h", y=-0.3))
    return fig


def _signs_panel(key: str, title: str, paper: str, needs: Sequence[Need], digits: Sequence[int], profile: str,
                 root: Optional[Path]) -> Panel:
    found = [(n, f) for n in needs for f in find(n, profile, root)]
    if not found:
        cmd = " && ".join(_figure_command(n.figure, profile) for n in needs)
        return Panel(key, title, paper + "\n\n" + _missing(
            "no stored `gradient_signs` of " + ", ".join(f"`{n.experiment}`" for n in needs), cmd, campaign=True),
            command=cmd)
    rows, col_titles, ids = [], None, []
    seen = set()
    for n, f in found:
        if (n.experiment, f.label) in seen or f.run_id in ids:  # profiles where both tables share runs
            continue
        seen.add((n.experiment, f.label))
        labels = [int(v) for v in f.arrays["labels"]]
        th = f.meta.get("thresholds", [])
        imgs = []
        titles = []
        for dgt in digits:
            if dgt not in labels:
                continue
            i = labels.index(dgt)
            for t, s in zip(th, f.arrays["signs"]):
                sig = s[i][0] if s[i].ndim == 3 else s[i]
                imgs.append(_colorize(sig.astype(float), _DIVERGING, -1, 1))
                titles.append(f"'{dgt}' |G|>{t:g}")
        epochs = presets.get(n.experiment).configs(profile, seeds=[0])[0][1].epochs
        rows.append((f"{f.label} ({epochs} ep) s{f.seed}", imgs))
        col_titles = col_titles or titles
        ids.append(f.run_id)
    fig = _grid(rows, col_titles=col_titles, title=title, size=80)
    th = found[0][1].meta.get("thresholds")
    cap = (f"{paper}\n\nOurs: sign of the raw input gradient where |G| exceeds each threshold ({th}; the paper does "
           f"not print its thresholds), red = +, green = −, black = below the threshold; the first test image of "
           f"each digit. {_profile_line(profile, needs[0].experiment)}. {_runs_line(ids)}.")
    absent = [f"{r} (`{n.experiment}`)" for n in needs for r in n.rows
              if not any(m is n and f.label == r for m, f in found)]
    command = None
    if absent:
        command = " && ".join(dict.fromkeys(_figure_command(n.figure, profile) for n in needs))
        cap += f"\n\n{', '.join(absent)}: {NOT_RUN}. To produce: `{command}`."
    return Panel(key, title, cap, figures=[fig], runs=ids, from_data=True, command=command)


def aelf_figure4(profile: str = DEFAULT_PROFILE, root: Optional[Path] = None) -> Panel:
    """AELF Figure 4: gradient signs of ST, AT, JT and AELFs on the digits '0' and '2'."""
    return _signs_panel("aelf_figure4", "AELF Figure 4: gradient signs of ST, AT, JT, AELFs",
                        "Paper (figure only): gradient signs of ST, AT, JT and AELFs (Table 2 models) on the test "
                        "digits '0' and '2', shown where |G| exceeds a threshold; AT's and JT's large gradients are "
                        "sparse, AELFs' cover the digit's shape and a region as broad as ST's.",
                        _needs("aelf_figure4"), (0, 2), profile, root)


def aelf_figure6(profile: str = DEFAULT_PROFILE, root: Optional[Path] = None) -> Panel:
    """AELF Figure 6: gradient signs on '1' and '3' of CNN_B(50) (Table 2) and CNN_B(30) (Table 6)."""
    return _signs_panel("aelf_figure6", "AELF Figure 6: gradient signs, CNN_B(50) vs CNN_B(30)",
                        "Paper (figure only): the gradient signs of Fig. 4 on the digits '1' and '3' for the models "
                        "trained 50 epochs (Table 2) and 30 epochs (Table 6); the two look alike.",
                        _needs("aelf_figure4") + _needs("aelf_figure6"), (1, 3), profile, root)


def aelf_figure5(profile: str = DEFAULT_PROFILE, root: Optional[Path] = None) -> Panel:
    """AELF Figure 5: sensitivity to β (AELFs, λ1 = λ2 = 0.5, CNN_B on CIFAR-10). Drawn from every
    evaluated AELFs 0.5:0.5 run on CIFAR-10 CNN_B of any experiment, grouped by β."""
    import plotly.graph_objects as go

    title = "AELF Figure 5: sensitivity to β"
    paper = ("Paper (appendix B.2, figure only): AELFs with λ1 = λ2 = 0.5, CNN_B on CIFAR-10: natural and robust "
             "accuracy rise with β up to about 0.6 and fall beyond 0.8; β in [0.1, 0.5] is recommended.")
    points: Dict[float, Dict[str, List[float]]] = {}
    ids = []
    for key, exp in presets.EXPERIMENTS.items():
        cfgs = [(lab, c) for lab, c in exp.configs(profile) if c.method == "aelfs" and c.dataset == "cifar10"
                and c.model == "cnn_b" and tuple(c.ratio) == (0.5, 0.5)]
        if not cfgs or key not in results_mod.TABLES:
            continue
        table = collect(key, profile, root)
        for lab, c in cfgs:
            for col in table["columns"]:
                v = table["cells"][lab][col]["seeds"].get(str(c.seed))
                if v is not None:
                    points.setdefault(float(c.beta), {}).setdefault(col, []).append(v)
                    ids.append(table["cells"][lab][col]["runs"][str(c.seed)])
    betas = sorted(points)
    if len(betas) < 2:
        have = f" (ours so far: β = {', '.join(f'{b:g}' for b in betas)} only)" if betas else ""
        cmd = ("no experiment in `robustbook.presets` sweeps β yet; a preset of AELFs 0.5:0.5 on CIFAR-10 CNN_B "
               "over β = 0.1 … 1.0, then python -m robustbook.reproduce <that key> --profile " + profile)
        return Panel("aelf_figure5", title,
                     paper + "\n\n" + f"**Ours: {NOT_RUN}**{have}. What would produce it: {cmd}.",
                     runs=list(dict.fromkeys(ids)), from_data=False, command=cmd)
    fig = go.Figure()
    for ci, col in enumerate(sorted({c for p in points.values() for c in p})):
        fig.add_trace(go.Scatter(x=betas, y=[_mean_std(points[b].get(col, []))[0] for b in betas],
                                 mode="lines+markers", name=col, line=dict(color=_PALETTE[ci])))
    fig.update_layout(title=dict(text=title), xaxis_title="β", yaxis_title="accuracy (%)", height=400)
    ids = list(dict.fromkeys(ids))
    return Panel("aelf_figure5", title, f"{paper}\n\nOurs: mean over seeds; {_profile_line(profile)}. "
                 f"{_runs_line(ids)}.", figures=[fig], runs=ids, from_data=True)


def aelf_table4(profile: str = DEFAULT_PROFILE, root: Optional[Path] = None) -> Panel:
    return table_panel("aelf_table4", profile, "AELF Table 4: WRN-40 on CIFAR-10", root,
                       note="Rows of other works are the numbers the paper quotes; we train ST and AELFs only.")


def aelf_table5(profile: str = DEFAULT_PROFILE, root: Optional[Path] = None) -> Panel:
    return table_panel("aelf_table5", profile, "AELF Table 5: CIFAR-100", root,
                       note="Rows of other works are the numbers the paper quotes; we train ST and AELFs only.")


def aelf_table6(profile: str = DEFAULT_PROFILE, root: Optional[Path] = None) -> Panel:
    return table_panel("aelf_table6", profile, "AELF Table 6: shifted MNIST, CNN_B trained 30 epochs", root)


# =========================================================================== RLFAT
def rlfat_figure1(n_images: int = 4, seed: int = 0, draws: int = 4) -> Panel:
    """RLFAT Figure 1: Random Block Shuffle, drawn now from `transforms.rbs` on real CIFAR-10
    test images: the paper's k = 3 equal blocks and the official code's one random cut per axis
    (k = 2, the training default), several draws each, plus painted blocks as in the paper."""
    import torch

    from . import transforms as T

    title = "RLFAT Figure 1: Random Block Shuffle (RBS)"
    paper = ("Paper: RBS with k = 3 cuts the image into 3 horizontal strips, shuffles them, then the same "
             "vertically; the figure paints the blocks in different colours. The official code (used for training "
             "here) makes one random cut per axis (k = 2, cut c ~ U{0..n-1}) and swaps the two strips half the time.")
    # painted blocks: a 3x3 grid of colours, 32x32
    painted = torch.zeros(1, 3, 32, 32)
    colours = torch.tensor(_lut("Turbo")[np.linspace(20, 235, 9).astype(int)], dtype=torch.float32) / 255
    bounds = torch.linspace(0, 32, 4).round().long()
    for i in range(3):
        for j in range(3):
            painted[0, :, bounds[i]:bounds[i + 1], bounds[j]:bounds[j + 1]] = colours[3 * i + j][:, None, None]
    rows = [("painted", [_rgb(painted[0].numpy())] +
             [_rgb(T.rbs(painted, 3, device_mod.generator(device_mod.HOST, seed + d), mode="paper")[0].numpy())
              for d in range(draws)])]
    lines = [paper]
    try:
        test = data_mod.load("cifar10", "test")
        x = test.x[:n_images]
        for i in range(len(x)):
            xi = x[i:i + 1]
            rows.append((f"paper k=3 #{i}", [_rgb(xi[0].numpy())] + [
                _rgb(T.rbs(xi, 3, device_mod.generator(device_mod.HOST, seed + d), mode="paper")[0].numpy())
                for d in range(draws)]))
            rows.append((f"official k=2 #{i}", [_rgb(xi[0].numpy())] + [
                _rgb(T.rbs(xi, 2, device_mod.generator(device_mod.HOST, seed + d), mode="official")[0].numpy())
                for d in range(draws)]))
        lines.append(f"Ours: drawn now with `transforms.rbs` (modes 'paper' and 'official') on {test.describe()}; "
                     f"first column the original, then {draws} independent draws (seeds {seed}…{seed + draws - 1}).")
        from_data = True
    except (data_mod.DatasetNotFound, OSError) as e:
        lines.append(f"CIFAR-10 is not available here ({e}): only the painted blocks are drawn.")
        from_data = False
    fig = _grid(rows, col_titles=["original"] + [f"draw {d + 1}" for d in range(draws)], title=title, size=90)
    return Panel("rlfat_figure1", title, "\n\n".join(lines), figures=[fig], from_data=from_data)


def _avg_robust(table: Mapping, label: str, robust_cols: Sequence[str]) -> List[float]:
    """Per seed: the mean of the robust columns that seed has all of."""
    seeds = None
    for c in robust_cols:
        s = set(table["cells"].get(label, {}).get(c, {}).get("seeds", {}))
        seeds = s if seeds is None else seeds & s
    return [statistics.fmean(table["cells"][label][c]["seeds"][s] for c in robust_cols) for s in sorted(seeds or [])]


def rlfat_figure2(profile: str = DEFAULT_PROFILE, root: Optional[Path] = None) -> Panel:
    """RLFAT Figure 2 (ablation): standard accuracy and the average robust accuracy over the
    attacks for PGDAT -> RLFL_P -> RLFAT_P and TRADES -> RLFL_T -> RLFAT_T, per dataset."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    order = ["PGDAT", "RLFL_P (ablation)", "RLFAT_P", "TRADES", "RLFL_T (ablation)", "RLFAT_T"]
    robust = ["PGD", "CW", "N attack"]
    panels = (("STL-10", "rlfat_table1a"), ("CIFAR-10", "rlfat_table1b"), ("CIFAR-100", "rlfat_table1c"))
    fig = make_subplots(rows=1, cols=3, subplot_titles=[p[0] for p in panels], shared_yaxes=True)
    ids, missing = [], []
    for pi, (name, key) in enumerate(panels):
        table = None if _dataset_missing(key, profile) else collect(key, profile, root)
        if table is None or not _evaluated(table):
            missing.append(name)
        for mi, (metric, cols) in enumerate((("standard", ["No attack"]), ("average robust", robust))):
            ours, err, hover, pv = [], [], [], []
            for lab in order:
                vals = _avg_robust(table, lab, cols) if table else []
                m, s = _mean_std(vals)
                ours.append(m)
                err.append(s or 0)
                hover.append(f"{lab}: {', '.join(f'{v:.1f}' for v in vals) or NOT_RUN}")
                try:
                    p = [paper_mod.value(key, lab, c) for c in cols]
                    pv.append(statistics.fmean(p) if all(v is not None for v in p) else None)
                except KeyError:
                    pv.append(None)
            color = _PALETTE[mi]
            fig.add_trace(go.Bar(x=order, y=ours, name=f"{metric} (ours)", marker_color=color, offsetgroup=str(mi),
                                 error_y=dict(type="data", array=err), hovertext=hover, hoverinfo="text+y",
                                 legendgroup=metric, showlegend=pi == 0), row=1, col=pi + 1)
            fig.add_trace(go.Scatter(x=order, y=pv, mode="markers", name=f"{metric} (paper, Table 1)",
                                     offsetgroup=str(mi), legendgroup=metric + "p", showlegend=pi == 0,
                                     marker=dict(symbol="diamond", size=10, color=color, line=dict(color="black",
                                                                                                   width=1))),
                          row=1, col=pi + 1)
        if table:
            ids += _evaluated(table)
    fig.update_layout(title=dict(text="RLFAT Figure 2: ablation (RLFL = RBS only, RLFAT = RBS + transfer)"),
                      barmode="group", scattermode="group", height=470, yaxis_title="accuracy (%)",
                      legend=dict(orientation="h", y=-0.35))
    fig.update_xaxes(tickangle=-40)
    cap = ("Paper: standard accuracy and the average robust accuracy over PGD, CW and N-Attack, for the baselines, "
           "RBS alone (RLFL) and the full method (RLFAT); RLFL improves on the baseline and RLFT improves further, "
           "except RLFAT_P's standard accuracy on CIFAR-100. The figure prints no numbers: the diamonds are Table 1's "
           "values (no RLFL rows there). Ours: mean ± std over seeds of the per-seed average. "
           f"{_profile_line(profile, 'rlfat_table1b')}. {_runs_line(ids)}.")
    command = None
    if missing:
        command = "; ".join(_reproduce_command(k, profile) for n, k in panels if n in missing)
        why = "; ".join(f"{n}: {'not available offline' if _dataset_missing(k, profile) else 'no evaluated runs'}"
                        for n, k in panels if n in missing)
        cap += f"\n\n**{NOT_RUN}** for {', '.join(missing)} ({why}). Commands: `{command}`."
    return Panel("rlfat_figure2", "RLFAT Figure 2: ablation", cap, figures=[fig], runs=ids, from_data=bool(ids),
                 command=command)


def rlfat_figure3(profile: str = DEFAULT_PROFILE, root: Optional[Path] = None) -> Panel:
    """RLFAT Figures 3-4: SmoothGrad salience maps of PGDAT, TRADES, RLFAT_P and RLFAT_T."""
    need = _needs("rlfat_figure3")[0]
    found = find(need, profile, root)
    title = "RLFAT Figures 3-4: SmoothGrad salience maps"
    paper = ("Paper (figures only): for sampled images, the original and the SmoothGrad salience maps of PGDAT, "
             "TRADES, RLFAT_P and RLFAT_T; the RLFAT maps are more concentrated on the object and better aligned "
             "with its edges.")
    if not found:
        return _not_stored("rlfat_figure3", title, paper,
                           f"no stored `smoothgrad` of `{need.experiment}`", profile)
    shown = _by_rows(found, need)
    imgs = shown[0].arrays["images"]
    rows = []
    for i in range(len(imgs)):
        rows.append((f"image {i}", [_rgb(imgs[i])] + [_colorize(f.arrays["salience"][i], "Greys_r") for f in shown]))
    fig = _grid(rows, col_titles=["original"] + [f.label for f in shown], title=title, size=90)
    m = shown[0].meta
    cap = (f"{paper}\n\nOurs: SmoothGrad of the true-class logit, {m.get('n_samples')} noisy copies, noise "
           f"{m.get('noise')} × (max − min) of the image; |·| summed over channels, clipped at the 99th "
           "percentile. "
           f"{', '.join(f'{f.label} seed {f.seed}' for f in shown)}; {_profile_line(profile, need.experiment)}. "
           f"{_runs_line([f.run_id for f in shown])}.")
    return Panel("rlfat_figure3", title, cap, figures=[fig], runs=[f.run_id for f in shown], from_data=True)


def rlfat_table2(profile: str = DEFAULT_PROFILE, root: Optional[Path] = None) -> Panel:
    """RLFAT Table 2: loss sensitivity under brightness (-0.15 / +0.15) and gamma (0.8 / 1.2)."""
    import pandas as pd

    need = _needs("rlfat_table2")[0]
    found = find(need, profile, root)
    a, b = paper_mod.load("rlfat_table2a"), paper_mod.load("rlfat_table2b")
    rows = []
    for ra, rb in zip(a["rows"], b["rows"]):
        label = ra.get("label", ra["method"])
        hits = [f for f in found if f.label == label]
        row = {"method": label}
        for ds in ("STL-10", "CIFAR-10", "CIFAR-100"):
            for name, col, r, arr, i in (("brightness −0.15", f"{ds} brightness -0.15", ra, "brightness", 0),
                                         ("brightness +0.15", f"{ds} brightness +0.15", ra, "brightness", 1),
                                         ("gamma 0.8", f"{ds} gamma 0.8", rb, "gamma", 0),
                                         ("gamma 1.2", f"{ds} gamma 1.2", rb, "gamma", 1)):
                row[f"{ds} {name} · paper"] = _fmt(r["values"][col])
                if ds == "CIFAR-10":
                    row[f"{ds} {name} · ours"] = _fmt_ms([float(f.arrays[arr][i]) for f in hits], 2)
        rows.append(row)
    df = pd.DataFrame(rows)
    title = "RLFAT Table 2: loss sensitivity under brightness and gamma"
    lines = [f"Paper: {a['source']} / {b['source']}: mean ‖∇ₓ L‖₂ over the test set at the transformed image "
             "(lower = less sensitive); RLFAT_T < RLFAT_P < TRADES < PGDAT on every dataset. STL-10 and CIFAR-100: "
             f"paper only ({NOT_RUN}: the data sets are not available offline)."]
    command = None
    if found:
        lines.append(f"Ours (CIFAR-10): mean ± std over seeds; {found[0].meta.get('images')}; "
                     f"{_profile_line(profile, need.experiment)}. {_runs_line([f.run_id for f in found])}.")
    else:
        command = _figure_command("rlfat_table2", profile)
        lines.append(_missing("no stored `loss_sensitivity` of `rlfat_table1b`", command, campaign=True))
    return Panel("rlfat_table2", title, "\n\n".join(lines), tables=[df], runs=[f.run_id for f in found],
                 from_data=bool(found), command=command)


def rlfat_table1a(profile: str = DEFAULT_PROFILE, root: Optional[Path] = None) -> Panel:
    return table_panel("rlfat_table1a", profile, "RLFAT Table 1a: STL-10", root)


def rlfat_table1c(profile: str = DEFAULT_PROFILE, root: Optional[Path] = None) -> Panel:
    return table_panel("rlfat_table1c", profile, "RLFAT Table 1c: CIFAR-100", root)


# =========================================================================== per paper
PANELS: Dict[str, Tuple[Callable[..., Panel], ...]] = {
    "fpr": (fpr_figure2, fpr_figure3, fpr_figure4, fpr_table4, fpr_attention, fpr_lambda, fpr_ijcai_table1,
            fpr_ijcai_table2, fpr_table5),
    "aelf": (aelf_figure1, aelf_sweeps, aelf_figure2, aelf_figure3, aelf_figure4, aelf_figure6, aelf_figure5,
             aelf_table4, aelf_table5, aelf_table6),
    "rlfat": (rlfat_figure1, rlfat_figure2, rlfat_figure3, rlfat_table2, rlfat_table1a, rlfat_table1c),
}


def panels(paper: str, profile: str = DEFAULT_PROFILE, root: Optional[Path] = None) -> List[Panel]:
    """Every panel of `paper` ('fpr', 'aelf', 'rlfat') at `profile`."""
    out = []
    for fn in PANELS[paper]:
        out.append(fn() if fn is rlfat_figure1 else fn(profile, root=root))
    return out


#: experiments whose runs the figures of each paper read
PAPER_EXPERIMENTS = {
    "fpr": ("fpr_table2", "fpr_table4", "fpr_attention", "fpr_table1"),
    "aelf": ("aelf_table2", "aelf_table6", "aelf_table3"),
    "rlfat": ("rlfat_table1b",),
}


def prepare(paper: str, profile: str, seeds: Optional[Sequence[int]] = None) -> None:
    """Train and evaluate what `paper`'s figures need at `profile` (`reproduce`), then store their
    analyses (`compute`). For the notebooks' non-stored profiles; the stored book never calls it."""
    from . import reproduce

    keys = [k for k in PAPER_EXPERIMENTS[paper] if not _dataset_missing(k, profile)]
    reproduce.reproduce(keys, profile, seeds)
    compute(keys, profile, train=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="figure keys or experiment keys of NEEDS (default: all): "
                                             + ", ".join(sorted({n.figure for n in NEEDS})))
    ap.add_argument("--profile", default=DEFAULT_PROFILE, choices=presets.PROFILE_NAMES)
    ap.add_argument("--train", action="store_true", help="train missing runs first (otherwise they are skipped)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    try:
        done = compute(args.names, args.profile, train=args.train, progress=not args.quiet)
    except ValueError as e:
        ap.error(str(e))
    for fig, run_id, what in done:
        if what.startswith("skipped"):
            print(f"[figures] {fig}: {run_id} {what}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
