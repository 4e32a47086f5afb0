#!/usr/bin/env bash
# Build jess-geo's sdist and wheel (the wheel from the sdist, as pip users get it), install the
# wheel into a fresh virtual environment in a temporary folder, and print the path of that
# install's `jess-geo` console script on the last line (for JESS_GEO_INSTALLED_EXE).
#
# Usage: .ci/wheel_venv.sh [FOLDER]   (default: a new mktemp -d folder; the dev .venv builds)
# The fresh venv resolves every dependency from the package indexes like a user's `pip install`;
# it shares nothing with .venv (no --system-site-packages, no editable install).
set -euo pipefail

cd "$(dirname "$0")/.."
dev_python=${VENV:-.venv}/bin/python
base=${1:-$(mktemp -d -t jess-geo-wheel.XXXXXX)}
mkdir -p "$base"

echo "wheel_venv: building sdist + wheel into $base/dist" >&2
"$dev_python" -m build --no-isolation --outdir "$base/dist" . >"$base/build.log" 2>&1 \
    || { tail -30 "$base/build.log" >&2; exit 1; }
wheel=$(ls "$base"/dist/jess_geo-*.whl)
echo "wheel_venv: $(basename "$wheel") ($(du -k "$wheel" | cut -f1) KiB)" >&2

python3 -m venv "$base/venv"
echo "wheel_venv: installing the wheel into $base/venv" >&2
"$base/venv/bin/python" -m pip install --disable-pip-version-check "$wheel" >"$base/install.log" 2>&1 \
    || { grep -v "^WARNING: Location" "$base/install.log" | tail -30 >&2; exit 1; }
echo "wheel_venv: $(grep -c . "$base/install.log") lines in $base/install.log; $(tail -1 "$base/install.log")" >&2

exe="$base/venv/bin/jess-geo"
test -x "$exe"
echo "$exe"
