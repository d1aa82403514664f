#!/usr/bin/env bash
# Benchmark tools from Debian's packages, installed once per machine (`make bench` runs this
# first): wrk, an efficient HTTP load generator (max throughput), and util-linux's taskset
# (the server on one core, the load generator on the other).
set -euo pipefail

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "setup_bench_tools: run as root (or with sudo) to install: $*" >&2; exit 1
  fi
}

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v taskset >/dev/null || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} from Debian's packages (once per machine)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
wrk --version 2>&1 | head -1 || true
