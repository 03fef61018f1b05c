#!/usr/bin/env bash
# Set up keras_simclr for development and for the main job. Idempotent; fails loudly.
#
#   bash scripts/setup.sh              install (or refresh) everything
#   bash scripts/setup.sh --if-needed  only when the last set-up is missing or stale
#
# The Python environment: the active virtualenv if there is one, otherwise `python3`
# itself, unless that interpreter is externally managed (PEP 668), in which case a
# project-local .venv is created. The interpreter used is recorded in .setup/python so
# that `make run` and `make test` use the same one.
set -euo pipefail
cd "$(dirname "$0")/.."

STAMP=.setup/done
FASHION_MNIST_DIR=/usr/share/datasets/fashion-mnist

if [[ "${1:-}" == "--if-needed" ]]; then
  if [[ -f "$STAMP" && -f .setup/python && "$STAMP" -nt setup.cfg && "$STAMP" -nt scripts/setup.sh ]] \
      && "$(cat .setup/python)" scripts/check_install.py; then
    exit 0
  fi
  echo "setup: (re)installing" >&2
fi

choose_python() {
  if [[ -n "${VIRTUAL_ENV:-}" && -x "$VIRTUAL_ENV/bin/python" ]]; then
    echo "$VIRTUAL_ENV/bin/python"; return
  fi
  if [[ -x .venv/bin/python ]]; then
    echo "$PWD/.venv/bin/python"; return
  fi
  local py
  py=$(command -v python3 || true)
  if [[ -z "$py" ]]; then
    echo "setup: no python3 found on PATH; install Python 3.10-3.12 first." >&2
    exit 1
  fi
  if "$py" -c 'import sys, sysconfig, os; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")) else 1)'; then
    echo "setup: $py is externally managed; creating .venv" >&2
    "$py" -m venv .venv >&2
    echo "$PWD/.venv/bin/python"; return
  fi
  echo "$py"
}

PY=$(choose_python)
"$PY" -c 'import sys; v = sys.version_info; sys.exit(0 if (3, 10) <= v[:2] <= (3, 12) else 1)' || {
  echo "setup: $PY is Python $("$PY" -c 'import platform; print(platform.python_version())'); TensorFlow 2.21 needs Python 3.10-3.12." >&2
  exit 1
}
echo "setup: using $PY"
"$PY" -m pip install --disable-pip-version-check -q -e ".[dev]"

# The real data set of the main job and the quality benchmark, offline.
if [[ ! -f "$FASHION_MNIST_DIR/train-images-idx3-ubyte.gz" ]]; then
  if command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
    echo "setup: installing the Debian package dataset-fashion-mnist"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || {
      apt-get update -q >/dev/null
      apt-get install -y -q dataset-fashion-mnist >/dev/null
    }
  else
    echo "setup: Fashion-MNIST is not in $FASHION_MNIST_DIR and apt-get (as root) is not available." >&2
    echo "setup: the main job needs it: 'sudo apt-get install dataset-fashion-mnist', or pass --data_dir" >&2
    echo "setup: to a folder holding the four *-ubyte.gz files, or run with network access (tfds downloads it)." >&2
  fi
fi

mkdir -p .setup
echo "$PY" > .setup/python
"$PY" scripts/check_install.py
TF_CPP_MIN_LOG_LEVEL=3 "$PY" -c "import keras_simclr, tensorflow as tf, keras, jax; print(f'setup: keras_simclr {keras_simclr.__version__}, TensorFlow {tf.__version__}, Keras {keras.__version__}, JAX {jax.__version__}')"
touch "$STAMP"
