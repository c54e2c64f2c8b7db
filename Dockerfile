# syntax=docker/dockerfile:1
# The production image (docs/deploy.md): one image for the API (`api`, the default), the queue
# workers (`worker`) and the migrations (`migrate`); see docker/entrypoint.sh.
#
#   docker build -t alttext .
#   docker run --rm --read-only --tmpfs /tmp --env-file .env alttext migrate
#
# It runs as an unprivileged user on a read-only root filesystem: nothing is written but to /tmp
# (a tmpfs; images are held in memory only and never touch it). Its database is PostgreSQL:
# SQLite, the default of `make run`, is not for containers (its file would need a volume and
# allows one host only).

ARG PYTHON_IMAGE=python:3.13-slim

# --- build: the virtual environment, exactly as uv.lock says, without the dev group ------------
FROM ${PYTHON_IMAGE} AS build
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3 \
    UV_PROJECT_ENVIRONMENT=/opt/alttext \
    UV_SYSTEM_CERTS=true
WORKDIR /src
# uv: the release pinned in tools/bootstrap_uv.py, its SHA-256 checked (as `make` does).
COPY tools/bootstrap_uv.py tools/
RUN python3 tools/bootstrap_uv.py /usr/local/bin/uv
# The dependencies first: this layer changes only with uv.lock. Every one of them is a wheel, so
# no compiler is needed even here.
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project
# Then alttext itself, installed as a wheel (not editable): the final stage needs no source tree.
COPY src ./src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable

# --- runtime: the same Python, the environment, nothing to build with ---------------------------
FROM ${PYTHON_IMAGE} AS runtime
# A system user of its own: fixed ids (so orchestrators can check runAsNonRoot), no home, no shell.
RUN groupadd --system --gid 10001 alttext \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin alttext
COPY --from=build /opt/alttext /opt/alttext
COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/alttext-entrypoint
# Bytecode was compiled in the build stage; nothing may write it here. HOME points at the tmpfs
# for any library that wants a cache folder. ALTTEXT_ENV=production: the service refuses to
# start with unsafe settings (docs/configuration.md), so a bare `docker run` says what it needs.
ENV PATH=/opt/alttext/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    ALTTEXT_ENV=production \
    ALTTEXT_HOST=0.0.0.0 \
    ALTTEXT_PORT=8000
# An empty, root-owned working folder: settings come from the environment, not a .env file.
WORKDIR /app
USER 10001:10001
EXPOSE 8000
# Alive: /healthz answers 200 (python's urllib, so no curl in the image; proxies ignored). Worker
# and migrate containers have no /healthz: compose.yaml turns this check off for them.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:%s/healthz' % os.environ.get('ALTTEXT_PORT', '8000'), timeout=4)"]
ENTRYPOINT ["/usr/local/bin/alttext-entrypoint"]
CMD ["api"]
