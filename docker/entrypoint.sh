#!/bin/sh
# The image's entry point (docs/deploy.md). One process per container, run with exec so that it
# is the process the container's stop signal (SIGTERM) reaches:
#   api       the API and dashboard: alttext serve --host ${ALTTEXT_HOST:-0.0.0.0} [ARGS]
#   worker    a queue worker: alttext worker [ARGS]
#   migrate   the database migrations, once before the API starts: alttext db upgrade [ARGS]
#   alttext   ARGS… are alttext's own (docker run IMAGE alttext keys create …)
#   anything else is passed to alttext as it is (docker run IMAGE accounts list)
# No argument means `api`.
set -eu

if [ "$#" -eq 0 ]; then
  set -- api
fi

# prometheus-client's multiprocess mode needs its folder to exist before the process starts
# (docs/operations.md "Metrics"); in a container it lives on the /tmp tmpfs, empty at each start.
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
  mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
fi

command=$1
shift
case "$command" in
  api)
    exec alttext serve --host "${ALTTEXT_HOST:-0.0.0.0}" "$@"
    ;;
  worker)
    exec alttext worker "$@"
    ;;
  migrate)
    exec alttext db upgrade "$@"
    ;;
  alttext)
    exec alttext "$@"
    ;;
  *)
    exec alttext "$command" "$@"
    ;;
esac
