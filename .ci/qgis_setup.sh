#!/usr/bin/env bash
# Prepare a headless QGIS 3.22 (Debian) and the .venv-qgis test environment for the plugin.
# Idempotent: packages are installed only when missing, the venv only when absent.
set -euo pipefail

cd "$(dirname "$0")/.."

packages=(qgis python3-qgis python3-gdal gdal-bin xvfb)
missing=()
for pkg in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -gt 0 ]; then
    echo "qgis_setup: installing ${missing[*]}"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    echo "qgis_setup: QGIS packages already installed"
fi

# QGIS is importable only from Debian's own interpreter.
if [ ! -x .venv-qgis/bin/python ]; then
    /usr/bin/python3 -m venv --system-site-packages .venv-qgis
fi
if ! .venv-qgis/bin/python -c "import pytest, pytest_qgis, pytestqt" 2>/dev/null; then
    .venv-qgis/bin/pip install -q pytest pytest-qgis pytest-qt
fi
.venv-qgis/bin/python -c "import qgis.core; print('qgis_setup: QGIS', qgis.core.Qgis.QGIS_VERSION)"
