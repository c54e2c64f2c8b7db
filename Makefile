# The two commands of the quick start: `make run` and `make test`.
# They need make and a Python 3.11-3.13 (the distribution's, python.org's, pyenv's): no pip, no venv
# module, no sudo. uv is the one on PATH, or a pinned, sha256-checked copy that
# tools/bootstrap_uv.py fetches from the package index into .tools/ (see README).
SHELL := /bin/bash
PYTHON ?= python3
# The interpreter of .venv: that same Python (e.g. `make test PYTHON=python3.13`).
export UV_PYTHON ?= $(PYTHON)
# Trust the certificates the system trusts, as Python (and so the bootstrap) does
# (UV_NATIVE_TLS is the older name, for a uv before 0.13 on PATH).
export UV_SYSTEM_CERTS ?= true
export UV_NATIVE_TLS ?= $(UV_SYSTEM_CERTS)
LOCAL_UV := $(CURDIR)/.tools/bin/uv
ifeq ($(origin UV),undefined)
UV := $(or $(shell $(PYTHON) tools/bootstrap_uv.py --which 2>/dev/null || command -v uv 2>/dev/null),$(LOCAL_UV))
endif
RUN := $(UV) run --no-sync
PYTEST_ARGS ?=

.PHONY: install run test lint bench check-lock clean

$(LOCAL_UV): tools/bootstrap_uv.py
	$(PYTHON) tools/bootstrap_uv.py $@

# Exactly what uv.lock says (.ci/run checks that it matches pyproject.toml).
# Everything: the service and the test, lint and bench tools.
install: $(UV)
	$(UV) sync --frozen

# Only what running needs (no test or lint tools; those already there are left alone).
run: $(UV)
	$(UV) sync --frozen --no-dev --inexact
	$(RUN) alttext db upgrade
	$(RUN) alttext dev-key
	$(RUN) alttext serve

test: install
	bash tools/install_axe.sh
	$(RUN) pytest $(PYTEST_ARGS)

lint: install
	$(RUN) ruff check src tests bench tools/bootstrap_uv.py
	$(RUN) ruff format --check src tests bench tools/bootstrap_uv.py
	$(RUN) mypy

bench: install
	$(RUN) python bench/run.py

# uv.lock still matches pyproject.toml (after editing dependencies: `$(UV) lock`).
check-lock: $(UV)
	$(UV) lock --check

clean:
	rm -rf .venv var .pytest_cache .mypy_cache .ruff_cache .tools
