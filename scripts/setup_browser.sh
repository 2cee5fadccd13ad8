#!/usr/bin/env bash
# Chromium and its chromedriver for the browser tests (tests/browser), from Debian's packages
# `chromium` and `chromium-driver`, installed with apt-get where missing. Idempotent.
# CHROMIUM_BIN / CHROMEDRIVER_BIN point at another Chromium and its matching driver instead.
set -euo pipefail
apt_get=${APT_GET:-apt-get}   # tests point this at a stand-in

chromium=${CHROMIUM_BIN:-$(command -v chromium || command -v chromium-browser || true)}
driver=${CHROMEDRIVER_BIN:-$(command -v chromedriver || true)}
works() { [ -n "$1" ] && "$1" --version >/dev/null 2>&1; }

if works "$chromium" && works "$driver"; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; fi
echo "[setup] installing chromium and chromium-driver with apt-get (for tests/browser)"
if command -v "$apt_get" >/dev/null 2>&1 \
   && $sudo "$apt_get" update -qq \
   && DEBIAN_FRONTEND=noninteractive $sudo "$apt_get" install -y -qq --no-install-recommends chromium chromium-driver; then
  chromium=${CHROMIUM_BIN:-$(command -v chromium || true)}
  driver=${CHROMEDRIVER_BIN:-$(command -v chromedriver || true)}
fi
if works "$chromium" && works "$driver"; then
  exit 0
fi
cat >&2 <<'MSG'
[setup] ERROR: the browser tests need Chromium and chromedriver, and they could not be installed.
        apt-get install chromium chromium-driver needs apt-get and root (or passwordless sudo).
        Install the two packages yourself, or set CHROMIUM_BIN and CHROMEDRIVER_BIN to a Chromium
        and the chromedriver of the same version. Everything but the browser tests runs without them:
        bash scripts/setup_env.sh && .venv/bin/python -m pytest -m "not browser"
MSG
exit 1
