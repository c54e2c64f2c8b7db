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
# Compile the installed packages to bytecode, as pip does: otherwise, wherever bytecode cannot be
# written (PYTHONDONTWRITEBYTECODE, a read-only install), every command compiles what it imports,
# every time: `alttext accounts list` took 1.0 s instead of 0.5 s (docs/cli.md, startup).
export UV_COMPILE_BYTECODE ?= 1
# The project itself is installed editable (its source is imported in place), which uv does not
# compile: the same for src/, as a wheel install would have it (stale files are recompiled).
COMPILE_SRC = $(RUN) python -m compileall -q src
LOCAL_UV := $(CURDIR)/.tools/bin/uv
ifeq ($(origin UV),undefined)
UV := $(or $(shell $(PYTHON) tools/bootstrap_uv.py --which 2>/dev/null || command -v uv 2>/dev/null),$(LOCAL_UV))
endif
RUN := $(UV) run --no-sync
PYTEST_ARGS ?=

.PHONY: install run test lint bench chaos check-lock audit clean

$(LOCAL_UV): tools/bootstrap_uv.py
	$(PYTHON) tools/bootstrap_uv.py $@

# Exactly what uv.lock says (.ci/run checks that it matches pyproject.toml).
# Everything: the service and the test, lint and bench tools.
install: $(UV)
	$(UV) sync --frozen
	$(COMPILE_SRC)

# Only what running needs (no test or lint tools; those already there are left alone).
run: $(UV)
	$(UV) sync --frozen --no-dev --inexact
	$(COMPILE_SRC)
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

# Writes docs/benchmarks.md and docs/benchmarks.json (about 10 minutes on 2 cores).
# `make bench BENCH_QUICK=1`: the short plan, into var/bench/ (sizes and caps: bench/plan.py).
bench: install
	$(RUN) python bench/run.py

# Every failure scenario of tests/chaos, the long ones (marked `chaos`) and the short variants
# that `make test` also runs; their figures go to var/chaos/*.json, then into docs/reliability.md.
# PostgreSQL and Redis scenarios need ALTTEXT_TEST_DATABASE_URL / ALTTEXT_TEST_REDIS_URL.
# CHAOS_MARK=chaos: the long ones only (CI, which has run the short ones in `make test`).
CHAOS_MARK ?= chaos or not chaos
chaos: install
	rm -rf var/chaos
	ALTTEXT_CHAOS_SCALE=$${ALTTEXT_CHAOS_SCALE:-1} $(RUN) pytest -m "$(CHAOS_MARK)" tests/chaos $(PYTEST_ARGS)
	$(RUN) python -m tests.chaos.report

# uv.lock still matches pyproject.toml (after editing dependencies: `$(UV) lock`).
check-lock: $(UV)
	$(UV) lock --check

# Known vulnerabilities in uv.lock (every group; not our own alttext-client, a path package that
# a same-named project on PyPI must not stand in for), by pip-audit with its default service
# (PyPI's advisory data). pip-audit runs from uv's tool cache, not from the project's environment.
# Each advisory ignored is listed, with its reason, in .ci/pip-audit-ignore.txt. The service is
# first asked about a canary, requests 2.19.0 (CVE-2018-18074): if it does not know that one, it
# cannot be reached and nothing would be audited, so the target fails (or, with
# AUDIT_IF_UNREACHABLE=warn, says so loudly and succeeds).
PIP_AUDIT ?= pip-audit==2.10.1
AUDIT_IF_UNREACHABLE ?= fail
audit: $(UV)
	@set -euo pipefail; tmp="$$(mktemp -d)"; trap 'rm -rf "$$tmp"' EXIT; \
	ignores=(); \
	while read -r id reason; do \
	  [[ -z "$$id" || "$$id" == \#* ]] && continue; \
	  [[ -n "$$reason" ]] || { echo "audit: $$id in .ci/pip-audit-ignore.txt needs a reason" >&2; exit 1; }; \
	  ignores+=(--ignore-vuln "$$id"); \
	done < .ci/pip-audit-ignore.txt; \
	audit=($(UV) tool run --from '$(PIP_AUDIT)' pip-audit --disable-pip --progress-spinner off); \
	echo 'requests==2.19.0' > "$$tmp/canary.txt"; \
	"$${audit[@]}" -r "$$tmp/canary.txt" --no-deps --format json --aliases on \
	  > "$$tmp/canary.json" 2>/dev/null || true; \
	if ! grep -q CVE-2018-18074 "$$tmp/canary.json"; then \
	  echo "audit: NOT AUDITED: pip-audit's vulnerability service did not report CVE-2018-18074 in" \
	    "requests 2.19.0 (the canary), so it cannot be reached from this machine" >&2; \
	  [[ "$(AUDIT_IF_UNREACHABLE)" == warn ]] && exit 0 || exit 1; \
	fi; \
	$(UV) export --frozen --no-emit-project --no-emit-package alttext-client \
	  --format requirements-txt --quiet > "$$tmp/requirements.txt"; \
	echo "audit: $$(grep -c '==' "$$tmp/requirements.txt") locked packages, $$(( $${#ignores[@]} / 2 )) advisories ignored"; \
	"$${audit[@]}" --strict -r "$$tmp/requirements.txt" $${ignores[@]+"$${ignores[@]}"}

clean:
	rm -rf .venv var .pytest_cache .mypy_cache .ruff_cache .tools
