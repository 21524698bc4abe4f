"""The built book in a real browser: headless Chromium (Debian's `chromium`) loads the pages
from a local http server on 127.0.0.1 with every other host unreachable, and we check what a
reader sees: a results table that fits the content column, a plotly figure whose dropdown keeps
the title and whose slider works, a widget rendered from its embedded state, the parameters
cell shown once, the footer, no request leaving 127.0.0.1 and no console error. Screenshots go
to book/_build/screenshots/.

The test builds a small book of its own (the real `_config.yml`, `book/intro.md` and the
`robustbook.book` extension, one notebook executed by papermill that calls the report
functions the chapters use) in about half a minute. To check a full build as well:
`ROBUSTBOOK_TEST_BOOK=book/_build/html pytest tests/test_browser.py`.

Chromium and playwright (its Python driver, no browser download) are needed; without them the
test fails in CI (CI=1, as `.ci/run` sets) and is skipped elsewhere, naming what to install.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "book" / "_build" / "screenshots"
IN_CI = bool(os.environ.get("CI"))


def _missing(what: str) -> None:
    msg = f"browser test needs {what}"
    if IN_CI:
        pytest.fail(msg + " (CI=1: .ci/run installs it)")
    pytest.skip(msg)


def _chromium() -> str:
    for cand in (os.environ.get("ROBUSTBOOK_CHROMIUM"), "chromium", "chromium-browser"):
        if cand and shutil.which(cand):
            return shutil.which(cand)
    _missing("Chromium: install Debian's package `chromium` (sudo apt-get install -y chromium) "
             "or set ROBUSTBOOK_CHROMIUM to a Chromium/Chrome binary")


def _playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the Python package `playwright` (pip install -e '.[test]'; no browser download is needed)")
    return sync_playwright


# a synthetic reproduced table: two methods, white and black box at two PGD step counts
TABLE = {
    "key": "fpr_table2", "profile": "cpu", "paper": "FP&R", "table": "Table 2", "title": "browser check",
    "rows": ["Madry et al. (2017)", "AT-reg"],
    "columns": ["Natural", "White box, PGD 5 steps", "White box, PGD 20 steps",
                "Black box, PGD 5 steps", "Black box, PGD 20 steps"],
    "cells": {}, "claims": [{"text": "AT-reg is more robust than Madry et al. under every white-box attack, "
                                     "by a margin the paper reports as about two points.",
                             "verdict": "no runs", "comparisons": []}],
    "runs": [{"label": "AT-reg", "seed": 0, "run_id": "at_reg-cifar10-000000000000", "state": "evaluated",
              "epochs_done": 15, "epochs": 15, "train_seconds": 1020.0, "eval_seconds": 300.0,
              "eval_file": "/somewhere/at_reg-cifar10-000000000000/eval/fpr_cifar-0.json"}],
}
for i, row in enumerate(TABLE["rows"]):
    TABLE["cells"][row] = {}
    for j, col in enumerate(TABLE["columns"]):
        seeds = {"0": 80.0 - 10 * j + i, "1": 81.0 - 10 * j + i} if i else {"0": 79.5 - 10 * j}
        vals = list(seeds.values())
        TABLE["cells"][row][col] = {
            "seeds": seeds, "runs": {k: f"run-{row[:3]}-{k}" for k in seeds}, "doubts": [],
            "n": len(vals), "mean": sum(vals) / len(vals), "std": 0.7 if len(vals) > 1 else None,
            "paper": 87.25 - 9 * j + i}

NOTEBOOK_CELLS = [
    ("markdown", [], "# Browser check\n\nA table, two figures and the tweak panel, as the chapters show them."),
    ("code", ["parameters"], 'profile = "stored"  # the chapters\' parameter'),
    ("code", ["remove-cell"], "import json\nfrom IPython.display import HTML, display\n"
                              "from robustbook import report\nreport.setup_plotly()\n"
                              f"table = json.loads({json.dumps(json.dumps(TABLE))})"),
    ("code", ["remove-input"], "display(HTML(report.results_html(table)))\n"
                               "display(report.results_figure(table))\n"
                               "display(report.steps_figure(table))\n"
                               "display(HTML(report.claims_html(table)))\n"
                               "display(HTML(report.frame_html(report.runs_table(table), code_columns=('run id',))))"),
    ("code", ["remove-input"], 'report.tweak_panel("fpr_table2", profile="smoke", table=table)'),
]


def _build_small_book(tmp: Path) -> Path:
    import nbformat

    from robustbook import book

    src = tmp / "src"
    src.mkdir()
    nb = nbformat.v4.new_notebook()
    for kind, tags, text in NOTEBOOK_CELLS:
        cell = nbformat.v4.new_markdown_cell(text) if kind == "markdown" else nbformat.v4.new_code_cell(text)
        cell.metadata["tags"] = tags
        nb.cells.append(cell)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(tmp / "check.ipynb"))
    book.execute("check", "stored", src, src=tmp / "check.ipynb")
    shutil.copy(REPO / "_config.yml", src / "_config.yml")
    shutil.copy(REPO / "book" / "intro.md", src / "intro.md")
    (src / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: check\n")
    jb = Path(sys.executable).parent / "jupyter-book"
    proc = subprocess.run([str(jb), "build", str(src), "--path-output", str(tmp / "out")],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return tmp / "out" / "_build" / "html"


class _Server:
    def __init__(self, root: Path):
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


class _Browser:
    """One Chromium page with every request outside 127.0.0.1 refused and recorded, and the
    console errors collected."""

    def __init__(self, pw, chromium: str):
        # the host resolver cuts the network for anything playwright's router might miss
        self.browser = pw.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"])
        self.page = self.browser.new_page(viewport={"width": 1280, "height": 900})
        # generous: on a loaded 2-core machine parsing plotly.js and the widget manager takes long
        self.page.set_default_timeout(120_000)
        self.page.set_default_navigation_timeout(180_000)
        self.outside, self.errors = [], []
        self.page.route("**/*", self._route)
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        self.page.on("requestfailed", lambda r: r.url.startswith("http://127.0.0.1")
                     and self.errors.append(f"failed: {r.url}"))

    def _route(self, route):
        url = route.request.url
        if url.startswith("http://127.0.0.1:") or url.startswith("data:") or url.startswith("blob:"):
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def open(self, url: str):
        self.page.goto(url, wait_until="load")
        self.page.wait_for_function("() => [...document.querySelectorAll('.plotly-graph-div')]"
                                    ".every(d => d.querySelector('.main-svg'))")
        self.page.wait_for_timeout(500)
        return self.page

    def shot(self, name: str, full: bool = True):
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full)

    def close(self):
        self.browser.close()


FITS = """() => [...document.querySelectorAll('.rb-wrap')].map(w => [w.scrollWidth, w.clientWidth])"""
PRE_FITS = """() => [...document.querySelectorAll('article pre')].filter(p => p.checkVisibility() && p.scrollWidth > p.clientWidth + 1)
                    .map(p => p.textContent.slice(0, 80))"""


def _check_chapter(b: _Browser, page, name: str, expect_widget: bool = True, expect_slider: bool = True):
    if expect_widget:
        page.wait_for_selector(".jupyter-widgets button")  # the widget manager renders after load
    b.shot(name)  # the page as a reader first sees it, before the checks click anything
    assert page.locator("table.rb-table").count() >= 1, "no results table rendered"
    text = page.locator("article").inner_text()
    for bad in ("NaN", "None", "nan ±", "/work/", "/somewhere/"):
        assert bad not in text, f"{bad!r} shown on the page"
    too_wide = [w for w in page.evaluate(FITS) if w[0] > w[1] + 1]
    assert not too_wide, f"tables wider than the content column (scroll, client): {too_wide}"
    assert not page.evaluate(PRE_FITS), "code runs past the page edge"
    plots = page.locator(".js-plotly-plot")
    assert plots.count() >= 1, "no plotly figure rendered"
    assert page.evaluate("() => document.querySelector('.js-plotly-plot')._fullData.length") > 0
    # the dropdown keeps a readable title
    fig = plots.nth(0)
    title0 = fig.locator(".gtitle").text_content()
    assert title0 and ":" in title0 and "fpr_" not in title0, title0
    if fig.locator(".updatemenu-header-group").count():
        fig.locator(".updatemenu-header-group").click()
        fig.locator(".updatemenu-dropdown-button").nth(1).click()
        page.wait_for_timeout(300)
        title1 = fig.locator(".gtitle").text_content()
        assert title1 and title1 != title0, f"dropdown dropped or kept the old title: {title1!r}"
        fig.screenshot(path=str(SHOTS / f"{name}-dropdown.png"))
    if expect_slider:
        sliders = page.locator(".js-plotly-plot .slider-container")
        assert sliders.count() >= 1, "no plotly slider"
        gd = sliders.nth(0).locator("xpath=ancestor::div[contains(@class,'js-plotly-plot')]")
        before = gd.evaluate("el => [el.layout.title.text, el._fullData.map(t => t.visible)]")
        rail = sliders.nth(0).locator(".slider-rail-touch-rect")
        rail.scroll_into_view_if_needed()
        box = rail.bounding_box()
        page.mouse.move(box["x"] + box["width"] - 3, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.up()
        page.wait_for_timeout(500)
        after = gd.evaluate("el => [el.layout.title.text, el._fullData.map(t => t.visible)]")
        assert after != before, "moving the slider changed nothing"
        assert after[0], "the slider dropped the title"
        gd.screenshot(path=str(SHOTS / f"{name}-slider.png"))
    if expect_widget:
        widgets = page.locator(".jupyter-widgets .widget-button, .jupyter-widgets button")
        assert widgets.count() >= 1, "the widget did not render from its embedded state"
        assert page.locator(".jupyter-widgets .widget-slider, .jupyter-widgets .widget-hslider").count() >= 1
        page.locator(".jupyter-widgets").first.screenshot(path=str(SHOTS / f"{name}-widget.png"))


def test_built_book_in_headless_chromium(tmp_path):
    from robustbook import book

    chromium = _chromium()
    sync_playwright = _playwright()
    name = "@jupyter-widgets/html-manager"
    version = book.NPM_PACKAGES[name][0]
    if not shutil.which("npm") and not (book.NPM_CACHE / f"jupyter-widgets-html-manager-{version}.tgz").exists():
        _missing(f"npm (Debian: apt-get install npm) to fetch {name}@{version} for the book's widgets")
    check_book(_build_small_book(tmp_path), chromium, sync_playwright)


def check_book(html: Path, chromium: str, sync_playwright) -> None:
    server = _Server(html)
    try:
        with sync_playwright() as pw:
            b = _Browser(pw, chromium)
            try:
                page = b.open(server.base + "check.html")
                _check_chapter(b, page, "small-book-chapter")
                params = [c for c in page.locator("div.cell").all_inner_texts() if "profile =" in c]
                assert len(params) == 1, f"parameters cell shown {len(params)} times"
                page = b.open(server.base + "intro.html")
                footer = page.locator("footer.bd-footer-content").inner_text()
                assert "2026" in footer and "robust-features-book contributors" in footer, footer
                assert not page.evaluate(PRE_FITS), "the intro's commands run past the page edge"
                b.shot("small-book-intro")
                full = os.environ.get("ROBUSTBOOK_TEST_BOOK")
                if full:  # a full build: every chapter
                    b.close()
                    server.close()
                    server = _Server(Path(full))
                    b = _Browser(pw, chromium)
                    from robustbook import book

                    for name in book.NOTEBOOKS:
                        if not (Path(full) / "book" / f"{name}.html").exists():
                            continue
                        page = b.open(server.base + f"book/{name}.html")
                        assert not page.evaluate(PRE_FITS), f"{name}: code runs past the page edge"
                        too_wide = [w for w in page.evaluate(FITS) if w[0] > w[1] + 1]
                        assert not too_wide, f"{name}: tables wider than the column: {too_wide}"
                        b.shot(f"book-{name}")
                assert not b.outside, f"requests left 127.0.0.1: {sorted(set(b.outside))}"
                assert not b.errors, f"console errors: {b.errors}"
            finally:
                b.close()
    finally:
        server.close()


def test_offline_guard_rejects_remote_scripts():
    """The Sphinx extension refuses a page that would load a script from another host."""
    from sphinx.builders.html._assets import _JavaScript
    from sphinx.errors import ExtensionError

    from robustbook import book

    ctx = {"script_files": [_JavaScript("_static/doctools.js"), _JavaScript(None, body='const THEBE_JS_URL = "x"'),
                            _JavaScript("https://cdn.example.org/require.min.js")],
           "css_files": [], "body": ""}
    with pytest.raises(ExtensionError, match="cdn.example.org"):
        book._on_page_context(None, "p", "page.html", ctx, None)
    ctx["script_files"].pop()
    ctx["body"] = "<script>Plotly.newPlot('x', [])</script>"
    book._on_page_context(None, "p", "page.html", ctx, None)
    names = [str(js.filename) for js in ctx["script_files"]]
    assert names[0] == "_static/" + book.PLOTLY_JS and not any("THEBE" in str(js.attributes) for js in ctx["script_files"])
