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

.PHONY: install test book bench campaign campaign-status clean-book

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip >/dev/null
	$(PY) -m pip install -c constraints.txt -e '.[test,book,cluster]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q --durations=10 tests

book: $(STAMP)
	$(PY) -m robustbook.book --profile $(PROFILE)
	$(VENV)/bin/jupyter-book build . --path-output book
	@echo "Open book/_build/html/index.html in a browser."

bench: $(STAMP)
	$(PY) -m robustbook.bench

# the cpu campaign (issue 10): every cpu run the offline data allows, resumable; run it in the
# background (nohup make campaign > logs/campaign.log 2>&1 &) and commit data/ records as runs finish
campaign: $(STAMP)
	$(PY) -m robustbook.campaign

campaign-status: $(STAMP)
	$(PY) -m robustbook.campaign --status

clean-book:
	rm -rf book/_build
