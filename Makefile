# The two commands of the quick start: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/uv
endif
RUN := $(UV) run --frozen

.PHONY: install run test lint bench clean

$(UV):
	$(PYTHON) -m pip install --quiet --disable-pip-version-check uv

install: $(UV)
	$(UV) sync --frozen --quiet

run: install
	$(RUN) alttext db upgrade
	$(RUN) alttext dev-key
	$(RUN) alttext serve

test: install
	$(RUN) pytest

lint: install
	$(RUN) ruff check src tests bench
	$(RUN) ruff format --check src tests bench
	$(RUN) mypy

bench: install
	$(RUN) python bench/run.py

clean:
	rm -rf .venv var .pytest_cache .mypy_cache .ruff_cache
