"""Execute the book's notebooks with papermill: `python -m robustbook.book --profile stored`.

Each source notebook in `nbs/` (committed without outputs, one cell tagged
`parameters`) is executed into `book/<name>.ipynb`, which Jupyter Book then
renders (`_config.yml` sets `execute_notebooks: off`, so nothing runs twice).
Profile `stored` renders from results already in `data/` and trains nothing;
`smoke`, `cpu` or `paper` run what is missing at that profile first.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .data import REPO_ROOT

PROFILES = ("stored", "smoke", "cpu", "paper")
# the notebooks of the book, in reading order (the _toc.yml lists the executed copies)
NOTEBOOKS = ("foundations", "mnist_tables", "cifar10_tables", "performance")


def execute(name: str, profile: str, out_dir: Path, kernel: str = "python3") -> Path:
    import papermill as pm

    src = REPO_ROOT / "nbs" / f"{name}.ipynb"
    if not src.exists():
        raise FileNotFoundError(f"no notebook {src}; known notebooks: {list(NOTEBOOKS)}")
    out = out_dir / f"{name}.ipynb"
    pm.execute_notebook(str(src), str(out), parameters={"profile": profile}, kernel_name=kernel,
                        cwd=str(REPO_ROOT), progress_bar=False)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="stored", choices=PROFILES,
                    help="'stored' (default) renders stored results; other profiles train what is missing")
    ap.add_argument("--only", nargs="*", default=None, help="execute only these notebooks")
    args = ap.parse_args(argv)
    names = args.only or list(NOTEBOOKS)
    unknown = sorted(set(names) - set(NOTEBOOKS))
    if unknown:
        ap.error(f"unknown notebook(s) {unknown}; choose from {list(NOTEBOOKS)}")
    out_dir = REPO_ROOT / "book"
    out_dir.mkdir(exist_ok=True)
    for name in names:
        t0 = time.perf_counter()
        execute(name, args.profile, out_dir)
        print(f"executed nbs/{name}.ipynb -> book/{name}.ipynb ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
