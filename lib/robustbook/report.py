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
