# Two entry points on a fresh machine: `make book` (the main job) and `make test`.
# Each installs what it needs into .venv first (torch/torchvision pinned, see pyproject.toml).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Book profile: 'stored' renders from results already in data/ (fast, the default);
# 'smoke' / 'cpu' / 'paper' (re)run what is missing at that profile first.
PROFILE ?= stored
export ROBUSTBOOK_DATA ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)

.PHONY: install test book bench clean-book

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip >/dev/null
	$(PY) -m pip install -c constraints.txt -e '.[test,book,cluster]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

book: $(STAMP)
	$(PY) -m robustbook.book --profile $(PROFILE)
	$(VENV)/bin/jupyter-book build . --path-output book
	@echo "Open book/_build/html/index.html in a browser."

bench: $(STAMP)
	$(PY) -m robustbook.bench

clean-book:
	rm -rf book/_build
