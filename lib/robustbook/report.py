"""Tables and plotly figures for the book, built from data (stored results, registries).

Notebooks call these; they never hold plotting or training code of their own.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import torch

from . import data as data_mod
from . import models as models_mod
from . import presets


def setup_plotly() -> None:
    """Embed plotly.js in executed notebooks so figures stay interactive offline."""
    import plotly.io as pio

    pio.renderers.default = "notebook"


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
    fig.update_xaxes(visible=False).update_yaxes(visible=False)
    fig.update_layout(title=title, height=rows * size + 60, width=cols * size, margin=dict(l=5, r=5, t=50, b=5))
    return fig


def transforms_gallery(x: torch.Tensor, seed: int = 0) -> List:
    """The papers' transforms applied to a few images: RBS (both readings), brightness, gamma."""
    from . import transforms as T

    g = lambda: torch.Generator().manual_seed(seed)  # noqa: E731
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
_VERDICT_MARK = {"supported": "✅ supported", "contradicted": "❌ contradicted",
                 "same direction, not significant": "↗ same direction, not significant",
                 "inconclusive": "❔ inconclusive", "not enough seeds": "… not enough seeds", "no runs": "… no runs yet",
                 "not checked": "not checked"}


def results_header(table) -> str:
    """Markdown: what the numbers are, at which profile, how far from the paper's setting."""
    done = sum(r["state"] == "evaluated" for r in table["runs"])
    lines = [f"**{table['paper']} {table['table']}**: {table['title']}",
             "",
             f"- profile **{table['profile']}**: {done} of {len(table['runs'])} runs trained and evaluated "
             f"(suite `{table['suite']['name']}`, hash {table['suite']['hash']}); collected {table['created']} "
             f"at commit {table.get('git_commit')}, library {table['version']}.",
             f"- cells: our accuracy in % as mean ± std over seeds (n seeds); ⚠ = a gradient-masking check "
             "failed for that number; paper = the published value."]
    if table["profile"] != "paper":
        lines.append(f"- **not the paper's setting**; the {table['profile']} profile differs in: "
                     + "; ".join(f"`{d}`" if not d.startswith("why") else d for d in table["deviations"]))
    lines.append(f"- evaluation: {table['suite']['ref']}")
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
        hover = [f"{m}<br>seeds: {s}<br>runs: {', '.join(r.values())}" + (f"<br>⚠ {', '.join(dd)}" if dd else "")
                 for m, s, r, dd in zip(d.method, d.seeds, d.runs, d.doubts)]
        fig.add_trace(go.Bar(x=d.method, y=d.ours, name=f"ours ({table['profile']})", visible=visible,
                             error_y=dict(type="data", array=d["std"].fillna(0)), hovertext=hover,
                             hoverinfo="text+y", marker_color="#1f77b4"))
        fig.add_trace(go.Scatter(x=d.method, y=d.paper, name="paper", mode="markers", visible=visible,
                                 marker=dict(symbol="diamond", size=12, color="#d62728")))
    buttons = []
    for i, col in enumerate(cols):
        vis = [False] * (2 * len(cols))
        vis[2 * i] = vis[2 * i + 1] = True
        buttons.append(dict(label=col, method="update", args=[{"visible": vis}, {"title": f"{table['key']}: {col}"}]))
    fig.update_layout(title=f"{table['key']}: {cols[0]}", yaxis_title="accuracy (%)", height=height,
                      updatemenus=[dict(buttons=buttons, x=1.0, xanchor="right", y=1.15, yanchor="top")],
                      legend=dict(orientation="h", y=-0.15))
    return fig


def claims_table(table):
    """The paper's claims with our verdict on them (see robustbook.results)."""
    from . import results as results_mod

    df = results_mod.claims_frame(table)
    df["verdict"] = df["verdict"].map(lambda v: _VERDICT_MARK.get(v, v))
    return df


def runs_table(table):
    """Every run behind the table: state, epochs, time, config and evaluation files."""
    import pandas as pd

    return pd.DataFrame([{k: r.get(k) for k in ("label", "seed", "run_id", "state", "epochs_done", "epochs",
                                                 "train_seconds", "eval_seconds", "config", "eval_file")}
                         for r in table["runs"]])


def tweak_panel(key: str, profile: str = "smoke"):
    """ipywidgets controls to re-train one row of experiment `key` with other hyper-parameters
    (regulariser weight, eps, epochs, seed) and evaluate it with the table's suite. Runs are
    cached like any other (same config = loaded, not retrained). Needs a live kernel: in the
    static book the controls are shown but inert."""
    import ipywidgets as W
    from IPython.display import display

    from . import evaluate as evaluate_mod
    from . import results as results_mod
    from . import runs as runs_mod
    from .config import ConfigError

    exp = presets.get(key)
    configs = dict(exp.configs(profile, seeds=[0]))
    row = W.Dropdown(options=list(configs), description="row")
    lam = W.FloatLogSlider(value=0.1, base=10, min=-3, max=1, description="lambda")
    eps = W.IntSlider(value=8, min=1, max=16, description="eps x255")
    epochs = W.IntSlider(value=1, min=1, max=50, description="epochs")
    seed = W.IntText(value=0, description="seed")
    n_test = W.IntSlider(value=200, min=50, max=1000, step=50, description="test imgs")
    go_btn = W.Button(description="train + evaluate", button_style="primary")
    out = W.Output()

    def sync(_=None):
        cfg = configs[row.value]
        lam.value = cfg.lam if cfg.lam > 0 else 0.1
        lam.disabled = cfg.lam == 0
        eps.value = max(1, round(cfg.eps * 255))
        epochs.value = cfg.epochs

    def run(_):
        with out:
            out.clear_output()
            base = configs[row.value]
            try:
                cfg = base.replace(eps=eps.value / 255, alpha=base.alpha * eps.value / 255 / base.eps,
                                   epochs=epochs.value, seed=int(seed.value),
                                   milestones=tuple(m for m in base.milestones if m < epochs.value),
                                   **({"lam": lam.value} if base.lam > 0 else {}))
            except (ConfigError, ValueError) as e:
                print(f"invalid setting: {e}")
                return
            print(f"{cfg.run_id}: training {cfg.epochs} epoch(s) of {cfg.method} at profile {profile} ...")
            run_ = runs_mod.train(cfg, progress=True)
            suite = results_mod.get(key).suite_at(profile).replace(n=n_test.value, transfer=False)
            print(evaluate_mod.format_result(evaluate_mod.evaluate(run_, suite)))

    row.observe(sync, names="value")
    go_btn.on_click(run)
    sync()
    display(W.VBox([W.HBox([row, seed]), W.HBox([lam, eps]), W.HBox([epochs, n_test]), go_btn, out]))


def show_table(table, figure: bool = True) -> None:
    """Display everything the book shows for one reproduced table: header (profile, deviations,
    evaluation), paper-vs-ours table, figure, claims with verdicts, and the runs behind it."""
    from IPython.display import Markdown, display

    from . import results as results_mod

    display(Markdown(results_header(table)))
    display(results_mod.frame(table))
    if figure:
        display(results_figure(table))
    display(Markdown("**The paper's claims, checked** (z = difference / its standard error over seeds; "
                     "supported: every comparison z > 2; contradicted: some z < -2)"))
    display(claims_table(table))
    display(Markdown("**Runs behind the numbers**"))
    display(runs_table(table))
