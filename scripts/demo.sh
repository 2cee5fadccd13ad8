#!/usr/bin/env bash
# The main job: set up the environments, then run Label Studio + the backend with a demo project.
#   bash scripts/demo.sh             real CLIP (openai/clip-vit-base-patch32, or CLIP_MODEL)
#   bash scripts/demo.sh --offline   no internet: tiny random CLIP, meaningless scores
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m scripts.demo "$@"
