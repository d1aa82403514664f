#!/usr/bin/env bash
# System packages of the `scale` extra (models/ease_sparse.py: SANSA), once per machine:
# scikit-sparse builds from source against SuiteSparse (Debian's libsuitesparse-dev) with a C
# compiler. Then the extra itself, pinned by requirements.lock.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "setup_scale: run as root (or with sudo) to install: $*" >&2; exit 1
  fi
}

if ! [ -e /usr/include/suitesparse/cholmod.h ] || ! command -v cc >/dev/null; then
  echo "installing SuiteSparse and a C compiler from Debian's packages (once per machine)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    libsuitesparse-dev build-essential >/dev/null
fi
"$PYTHON" -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[scale]'
