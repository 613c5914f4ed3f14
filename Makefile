# `make validate`: grade every reference solution and template, print the scores.
# `make test`: the test suite. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: validate test lint templates clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[dev]'
	touch $@

validate: $(VENV)/.installed
	$(PY) -m graders validate

test: $(VENV)/.installed
	$(PY) -m pytest -n 2 --durations=15

lint: $(VENV)/.installed
	$(PY) -m ruff check graders graders_worker tests bench solutions datasets

templates: $(VENV)/.installed
	$(PY) -m graders templates

clean:
	rm -rf $(VENV)
