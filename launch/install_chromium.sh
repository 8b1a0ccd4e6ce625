#!/usr/bin/env bash
# Install headless Chromium (Debian package) for rendering the analysis HTML report in tests/CI.
# Idempotent: does nothing when a chromium binary is already on PATH. Needs root (or sudo) for apt-get.
set -euo pipefail

for bin in chromium chromium-browser google-chrome; do
    if command -v "$bin" >/dev/null 2>&1; then
        echo "install_chromium: $bin already installed at $(command -v "$bin")"
        exit 0
    fi
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "install_chromium: need root or sudo to apt-get install chromium" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
command -v chromium >/dev/null && chromium --version
