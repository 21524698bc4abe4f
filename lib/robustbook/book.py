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
from typing import Optional

from .data import REPO_ROOT

PROFILES = ("stored", "smoke", "cpu", "paper")
# the notebooks of the book, in reading order (the _toc.yml lists the executed copies)
NOTEBOOKS = ("foundations", "mnist_tables", "cifar10_tables", "fpr_figures", "aelf_figures", "rlfat_figures",
             "ledger", "performance")


def execute(name: str, profile: str, out_dir: Path, kernel: str = "python3", src: Optional[Path] = None) -> Path:
    """Execute `nbs/<name>.ipynb` (or `src`) into `out_dir/<name>.ipynb` with papermill, from the
    repository root, then keep one visible parameters cell (`show_parameters_once`)."""
    import papermill as pm

    src = Path(src) if src else REPO_ROOT / "nbs" / f"{name}.ipynb"
    if not src.exists():
        raise FileNotFoundError(f"no notebook {src}; known notebooks: {list(NOTEBOOKS)}")
    out = out_dir / f"{name}.ipynb"
    pm.execute_notebook(str(src), str(out), parameters={"profile": profile}, kernel_name=kernel,
                        cwd=str(REPO_ROOT), progress_bar=False)
    show_parameters_once(out)
    return out


def _assignments(source: str) -> dict:
    """name -> value of the literal assignments of a parameters cell (others are skipped)."""
    import ast

    out = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                out[node.targets[0].id] = ast.unparse(node.value)
    return out


def show_parameters_once(path: Path) -> None:
    """Papermill keeps the notebook's `parameters` cell and adds an `injected-parameters` cell
    after it; the book shows one of them. The original (with its comments) is shown when the
    injected values change nothing; otherwise the original is removed and the injected cell,
    headed by what it overrides, is shown."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    tagged = lambda tag: [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]  # noqa: E731
    original, injected = tagged("parameters"), tagged("injected-parameters")
    if not original or not injected:
        return
    defaults, given = _assignments(original[0].source), _assignments(injected[0].source)
    if all(defaults.get(k) == v for k, v in given.items()):
        hide = injected[0]
    else:
        hide = original[0]
        injected[0].source = ("# Parameters of this build (papermill), overriding the notebook's defaults "
                              + ", ".join(f"{k}={defaults.get(k)!r}" for k in given if defaults.get(k) != given[k])
                              + "\n" + injected[0].source.split("\n", 1)[-1])
    tags = hide.metadata.setdefault("tags", [])
    if "remove-cell" not in tags:
        tags.append("remove-cell")
    nbformat.write(nb, str(path))


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


# --------------------------------------------------------------------------- offline book (Sphinx extension)
# `_config.yml` loads this module as a Sphinx extension (`sphinx.extra_extensions`). It makes
# the built book self-contained: every script a page needs is copied at build time into the
# build's `_static/vendor/` from an installed Python package (plotly.js) or a pinned npm
# tarball (checked against its registry integrity, cached in data/cache/npm), and any page
# that would still load a script or stylesheet from another host fails the build.
NPM_PACKAGES = {
    # name -> (version, sha512 integrity from the npm registry, {file in package: file in vendor/})
    "@jupyter-widgets/html-manager": (
        "1.0.15",
        "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==",
        {"dist/": "html-manager/"},  # embed.js (no require.js needed) and the fonts it loads beside it
    ),
    "mathjax": (  # only fetched when some page has math
        "3.2.2",
        "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==",
        {"es5/": "mathjax/"},
    ),
}
WIDGETS_JS = "vendor/html-manager/embed.js"  # path under _static (see nb_ipywidgets_js in _config.yml)
PLOTLY_JS = "vendor/plotly.min.js"
MATHJAX_JS = "vendor/mathjax/tex-mml-chtml.js"
NPM_CACHE = REPO_ROOT / "data" / "cache" / "npm"


def npm_tarball(name: str, cache: Path = NPM_CACHE) -> Path:
    """The pinned tarball of npm package `name`, from the cache or `npm pack` (the registry),
    verified against its sha512 integrity."""
    import base64
    import hashlib
    import shutil
    import subprocess

    version, integrity, _ = NPM_PACKAGES[name]
    tgz = cache / f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"

    def ok(path: Path) -> bool:
        digest = base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()
        return f"sha512-{digest}" == integrity

    if tgz.exists() and ok(tgz):
        return tgz
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(f"the book needs {name}@{version} from the npm registry and npm is not installed "
                           f"(Debian: apt-get install npm), or put the tarball at {tgz}")
    cache.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([npm, "pack", f"{name}@{version}", "--pack-destination", str(cache), "--silent"],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 or not tgz.exists():
        raise RuntimeError(f"npm pack {name}@{version} failed: {proc.stderr.strip()[-500:]}")
    if not ok(tgz):
        tgz.unlink()
        raise RuntimeError(f"{name}@{version}: tarball does not match its registry integrity {integrity}")
    return tgz


def vendor_npm(name: str, static: Path) -> None:
    """Extract the files `NPM_PACKAGES[name]` maps into `static/vendor/` (once per build dir)."""
    import tarfile

    version, _, mapping = NPM_PACKAGES[name]
    stamp = static / "vendor" / f".{name.replace('/', '_')}-{version}"
    if stamp.exists():
        return
    with tarfile.open(npm_tarball(name)) as tar:
        for member in tar.getmembers():
            inner = member.name.split("/", 1)[1] if "/" in member.name else member.name
            for src, dst in mapping.items():
                if member.isfile() and inner.startswith(src) and not inner.endswith(".map"):
                    out = static / "vendor" / dst / inner[len(src):]
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_bytes(tar.extractfile(member).read())
    stamp.write_text(version + "\n")


def vendor_python(static: Path) -> None:
    """plotly.js from the installed plotly package (the version plotly.py was built for)."""
    import shutil

    import plotly

    src = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    out = static / PLOTLY_JS
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.exists() or out.stat().st_size != src.stat().st_size:
        shutil.copyfile(src, out)


def _static_dir(app) -> Path:
    return Path(app.outdir) / "_static"


def _on_builder_inited(app) -> None:
    if app.builder.format != "html":
        return
    static = _static_dir(app)
    vendor_python(static)
    vendor_npm("@jupyter-widgets/html-manager", static)


def _on_env_updated(app, env):
    if app.builder.format == "html" and env.get_domain("math").has_equations():
        vendor_npm("mathjax", _static_dir(app))
    return []


def _is_remote(uri) -> bool:
    uri = str(getattr(uri, "filename", uri) or "")
    return "://" in uri or uri.startswith("//")


def _on_page_context(app, pagename, templatename, context, doctree):
    """Per page: drop thebe (it loads from unpkg and declares its globals twice; the book has
    no live kernel), load plotly.js where a figure is drawn, and refuse any remote script."""
    scripts = []
    for js in context.get("script_files", []):
        name = str(getattr(js, "filename", js) or "")
        body = str(getattr(js, "attributes", {}).get("body", "")) if hasattr(js, "attributes") else ""
        if "thebe" in name or "THEBE_JS_URL" in body:
            continue
        scripts.append(js)
    context["script_files"][:] = scripts
    scripts = context["script_files"]
    context["css_files"][:] = [c for c in context.get("css_files", []) if "thebe" not in str(getattr(c, "filename", c))]
    if "Plotly.newPlot" in context.get("body", ""):
        from sphinx.builders.html._assets import _JavaScript

        if not any(str(getattr(js, "filename", js)).endswith(PLOTLY_JS) for js in scripts):
            scripts.insert(0, _JavaScript("_static/" + PLOTLY_JS, priority=100))
    remote = [str(getattr(x, "filename", x)) for x in context["script_files"] + context["css_files"]
              if _is_remote(x)]
    if remote:
        from sphinx.errors import ExtensionError

        raise ExtensionError(f"offline book: page {pagename} would load {remote} from the network; "
                             "vendor it in robustbook.book (NPM_PACKAGES / vendor_python)")


def setup(app):
    """Sphinx entry point (`_config.yml`: sphinx.extra_extensions: [robustbook.book])."""
    app.connect("builder-inited", _on_builder_inited)
    app.connect("env-updated", _on_env_updated)
    app.connect("html-page-context", _on_page_context, priority=900)  # after myst-nb / thebe add theirs
    return {"parallel_read_safe": True, "parallel_write_safe": True}
