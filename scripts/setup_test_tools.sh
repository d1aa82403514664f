#!/usr/bin/env bash
# Test tools from Debian's packages, installed once per machine (`make test` runs this first):
#   - Chromium, for the browser tests (tests/test_browser.py, driven by Playwright);
#   - promtool, from the `prometheus` package, for the Prometheus config test. Only the binary
#     is taken out of the package (into build/tools/): installing the package would also set
#     up a Prometheus server that the tests do not want.
# Never `playwright install`: that downloads a browser build of its own.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=build/tools

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "setup_test_tools: run as root (or with sudo) to install: $*" >&2; exit 1
  fi
}

updated=
apt_update_once() {
  if [ -z "$updated" ]; then as_root apt-get update -qq; updated=1; fi
}

if [ ! -x /usr/bin/chromium ]; then
  echo "installing Chromium from Debian's packages (once per machine)"
  started=$(date +%s)
  apt_update_once
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    chromium fonts-dejavu-core >/dev/null
  echo "Chromium installed in $(( $(date +%s) - started )) s: $(/usr/bin/chromium --version)"
fi

if [ ! -x "$TOOLS/promtool" ]; then
  echo "extracting promtool from Debian's prometheus package"
  apt_update_once
  scratch=$(mktemp -d)
  chmod 755 "$scratch"  # apt downloads as its _apt user
  trap 'rm -rf "$scratch"' EXIT
  (cd "$scratch" && apt-get download -qq prometheus)
  dpkg-deb -x "$scratch"/prometheus_*.deb "$scratch/root"
  mkdir -p "$TOOLS"
  install -m 0755 "$scratch/root/usr/bin/promtool" "$TOOLS/promtool"
  "$TOOLS/promtool" --version 2>&1 | head -1
fi
