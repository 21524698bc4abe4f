"""The install contract: pins agree between pyproject.toml and environment.yml; notebooks
are committed clean with a parameters cell; the two set-up commands are documented."""

import json
import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _pip_specs(lines):
    out = {}
    for line in lines:
        if line.startswith("-e"):
            continue
        m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", line.strip())
        out[m.group(1).lower()] = m.group(2).replace(" ", "")
    return out


def _constraints():
    lines = (REPO / "constraints.txt").read_text().splitlines()
    return _pip_specs([l for l in lines if l.strip() and not l.startswith("#")])


def test_environment_yml_matches_pyproject_and_constraints():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    pins = _constraints()
    assert _pip_specs(pip) == {**_pip_specs(wanted), **pins}
    specs = _pip_specs(wanted)
    assert specs["torch"] == ">=2.2" and specs["torchvision"] == ">=0.17"  # the supported range
    assert pins == {"torch": "==2.14.1", "torchvision": "==0.29.1"}  # the wheels on the build machines
    assert specs["jupyter-book"] == ">=1,<2" and specs["submitit"] == ">=1.5"


def test_make_install_applies_the_constraints():
    """Without -c constraints.txt pip could pick another torch (gigabytes of download here)."""
    make = (REPO / "Makefile").read_text()
    installs = [l for l in make.splitlines() if "pip install" in l and "-e " in l]
    assert installs and all("-c constraints.txt" in l for l in installs)


def test_notebooks_are_clean_and_parameterised():
    nbs = sorted((REPO / "nbs").glob("*.ipynb"))
    assert nbs
    for path in nbs:
        nb = json.loads(path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert all(not c.get("outputs") for c in code), f"{path.name} has outputs"
        tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
        assert "profile" in "".join(tagged[0]["source"])


def test_toc_lists_every_book_notebook():
    from robustbook import book

    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files = {ch["file"] for ch in toc["chapters"]}
    for name in book.NOTEBOOKS:
        assert f"book/{name}" in files and (REPO / "nbs" / f"{name}.ipynb").exists()


def test_readme_and_ci_contract():
    readme = (REPO / "README.md").read_text()
    assert "make book" in readme and "make test" in readme
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_book_cli_rejects_unknown_notebook(capsys):
    from robustbook import book

    try:
        book.main(["--only", "nope"])
    except SystemExit as err:
        assert err.code == 2
    assert "unknown notebook" in capsys.readouterr().err
