#!/usr/bin/env bash
# axe-core, the accessibility engine the browser tests inject into every page, from the npm
# registry into .tools/axe/ (pinned; nothing is fetched at test time). Without npm (a bare
# machine) it says so and leaves the browser tests to report what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
AXE_VERSION=4.14.1
DEST=.tools/axe
if [[ -f "$DEST/node_modules/axe-core/axe.min.js" ]] \
  && grep -q "\"version\": \"$AXE_VERSION\"" "$DEST/node_modules/axe-core/package.json"; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  echo "tools/install_axe.sh: npm not found; the browser tests need axe-core $AXE_VERSION" >&2
  exit 0
fi
mkdir -p "$DEST"
npm install --prefix "$DEST" --no-save --no-audit --no-fund --ignore-scripts --silent \
  "axe-core@$AXE_VERSION"
test -f "$DEST/node_modules/axe-core/axe.min.js"
