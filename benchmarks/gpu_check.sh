#!/usr/bin/env bash
# jess-geo on a GPU, measured (issue 16): one script, about 5 minutes on an H200, rerunnable.
#
#   bash benchmarks/gpu_check.sh [--device cuda|cpu|auto] [--small] [--no-install]
#                                [--train-minutes M] [--budget SECONDS] [--skip agree,predict,cli,steps,train]
#                                [--packages ARCHIVE]
#
# Stages (each under its own time limit; a failing stage is reported and the next one runs):
#   install  unpack benchmarks/gpu_wheels/site-cp3XX.tar.xz (made by benchmarks/gpu_wheels.sh:
#            rasterio, pyogrio, pyproj, shapely, geopandas, torchgeo, smp, the Lite0 weights)
#            into /tmp and put it and this repository on PYTHONPATH (the GPU machine reaches no
#            registry; --no-install uses the current environment, e.g. the project venv;
#            --packages names another archive, e.g. a cp311 one made to test the bundle on a CPU)
#   agree    class agreement of the demo model on sample_data/scene.tif, CPU vs --device
#            (benchmarks/gpu_agree.py; target >= 99.5 %)
#   predict  8000 x 8000 scene: end-to-end predict_raster vs the bare batched forward pass,
#            demo network and the configs/cpu_biocrust.yaml network, GPU memory peaks, batch x
#            tile sweep (benchmarks/gpu_predict.py; target: end to end >= 70 % of bare)
#   cli      one `jess-geo predict` of that scene with polygons, timed from the shell
#   steps    baseline and JESS training step times with AMP at the paper's settings
#            (benchmarks/gpu_step_time.py; target: JESS / baseline <= 1.6)
#   train    `jess-geo train --config configs/baseline_biocrust.yaml` on biocrust_usa for
#            --train-minutes (default 1.5) GPU minutes, and its validation accuracy
# Figures are printed and written to $OUT (default runs/gpu_check/): gpu_check.txt (this
# printout), summary.json, predict.json, agree.json, steps.json, train.json, train_curves.csv.
# --budget (default 360 s): no stage runs past it (each stage's limit is cut to what is left;
# the training run gets fewer minutes, or is skipped, when too little is left).
# --small: a tiny scene and short runs, for a dry run on a CPU (budget 3600 s).
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
device=cuda
small=0
install=1
train_minutes=""
budget=""
packages=""
skip=","
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --small) small=1; shift ;;
    --no-install) install=0; shift ;;
    --train-minutes) train_minutes="$2"; shift 2 ;;
    --skip) skip=",$2,"; shift 2 ;;
    --budget) budget="$2"; shift 2 ;;
    --packages) packages="$2"; shift 2 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
OUT="${OUT:-$repo/runs/gpu_check}"
mkdir -p "$OUT"
work="${GPU_CHECK_WORK:-${TMPDIR:-/tmp}/jess_geo_gpu_check}"
mkdir -p "$work"

if [ "$small" = 1 ]; then
  size=384; tile=256; overlap=32; batch=2; repeats=1; sweep_batches=2; sweep_tiles=256
  step_args=(--crop 128 --batch-size 2 --photo-scale 0.25 --steps 1 --warmup 1)
  train_args=(--photo-scale 0.25 --crop-size 128 --batch-size 2 --epochs 1)
  train_minutes="${train_minutes:-0.5}"
  budget="${budget:-3600}"
  slow=10  # stage limits x 10: a shared CPU
else
  size=8000; tile=512; overlap=64; batch=16; repeats=2; sweep_batches=8,16,32; sweep_tiles=512,1024
  step_args=(--crop 512 --batch-size 8 --photo-scale 1.0 --steps 10 --warmup 3)
  train_args=()
  train_minutes="${train_minutes:-1.5}"
  budget="${budget:-360}"
  slow=1
fi
start=$(date +%s)
case "$device" in cpu) accelerator=cpu ;; auto) accelerator=auto ;; *) accelerator=gpu ;; esac

skipped() { [[ "$skip" == *",$1,"* ]]; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}'; }  # seconds since $1 (no bc there)

left() { echo $((budget - ($(date +%s) - start))); }  # seconds of the budget left

stage() {  # stage NAME SECONDS COMMAND...: run under a time limit, report the outcome, never abort
  local name="$1" limit=$(($2 * slow)) t0 rc
  shift 2
  echo
  [ "$limit" -gt "$(left)" ] && limit=$(left)
  if [ "$limit" -lt 15 ]; then
    echo "== $name: skipped, ${limit} s of the ${budget} s budget left"
    echo "$name skipped" >> "$work/stages"
    return 0
  fi
  echo "== $name (limit ${limit} s)"
  t0=$(date +%s.%N)
  timeout --kill-after=10 "$limit" "$@"
  rc=$?
  printf '== %s: exit %d after %s s\n' "$name" "$rc" "$(since "$t0")"
  echo "$name $rc" >> "$work/stages"
  return 0
}

main() {
  local py site data t0
  : > "$work/stages"
  echo "jess-geo gpu_check: $(date -u +%FT%TZ), repository $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?'), device $device$([ "$small" = 1 ] && echo ', small')"
  if [ "$install" = 1 ]; then
    py="${PYTHON:-python3}"
    local abi
    abi=$("$py" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
    site="$work/site"
    packages="${packages:-$repo/benchmarks/gpu_wheels/site-$abi.tar.xz}"
    t0=$(date +%s.%N)
    rm -rf "$site" && mkdir -p "$site"
    # Python's tarfile, not tar -J: the GPU machine may have no xz program
    if ! "$py" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter="data")' \
        "$packages" "$site"; then
      echo "gpu_check.sh: $packages is missing or broken; run benchmarks/gpu_wheels.sh here and carry benchmarks/gpu_wheels" >&2
      return 1
    fi
    export PYTHONPATH="$site:$repo${PYTHONPATH:+:$PYTHONPATH}"
    printf 'installed the carried packages (%s) into %s in %s s\n' "$(basename "$packages")" "$site" "$(since "$t0")"
  else
    py="${PYTHON:-$repo/.venv/bin/python}"
    [ -x "$py" ] || py=python3
    export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
  fi
  export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
  "$py" - <<'EOF' || { echo "gpu_check.sh: the packages do not import (see above)" >&2; return 1; }
import importlib, sys
names = ["torch", "torchvision", "lightning", "timm", "numpy", "rasterio", "pyogrio", "pyproj", "shapely",
         "geopandas", "torchgeo", "segmentation_models_pytorch", "jess_geo"]
mods = {n: importlib.import_module(n) for n in names}
print("python", sys.version.split()[0], "|", ", ".join(f"{n} {getattr(m, '__version__', '?')}" for n, m in mods.items()))
print("GDAL", mods["rasterio"].__gdal_version__, "(rasterio) /", mods["pyogrio"].__gdal_version_string__, "(pyogrio); PROJ",
      mods["pyproj"].proj_version_str, "(pyproj); CUDA available:", mods["torch"].cuda.is_available())
EOF
  data="$repo/benchmarks/gpu_data/biocrust_usa"
  [ -d "$data/images" ] || data="$repo/../shared/data/biocrust_usa"

  skipped agree || stage agree 90 "$py" benchmarks/gpu_agree.py --device "$device" \
    --reference benchmarks/results/gpu_sample_classes_cpu.tif --json "$OUT/agree.json"
  skipped predict || stage predict 170 "$py" benchmarks/gpu_predict.py \
    --device "$device" --size "$size" --tile "$tile" --overlap "$overlap" --batch-size "$batch" --repeats "$repeats" \
    --sweep-batches "$sweep_batches" --sweep-tiles "$sweep_tiles" --workdir "$work/predict" --json "$OUT/predict.json"
  if ! skipped cli; then
    if [ -f "$work/predict/scene_$size.tif" ] && [ -f "$work/predict/demo_native_${tile}_${overlap}.pt" ]; then
      stage cli 90 "$py" -m jess_geo.cli.main predict "$work/predict/scene_$size.tif" \
        --model "$work/predict/demo_native_${tile}_${overlap}.pt" -o "$work/cli_classes.tif" --batch-size "$batch" \
        --device "$device" --overwrite --quiet
    else
      echo; echo "== cli: skipped (the predict stage made no scene / model)"
    fi
  fi
  skipped steps || stage steps 90 "$py" benchmarks/gpu_step_time.py \
    --device "$device" "${step_args[@]}" --json "$OUT/steps.json"
  if ! skipped train; then
    rm -rf "$work/train"
    local limit extra
    extra=$((75 * slow))  # start-up, data loading, the last validation
    train_minutes=$(awk -v m="$train_minutes" -v l="$(left)" -v e="$extra" 'BEGIN {x = (l - e) / 60; if (x < m) m = x; printf "%.2f", m}')
    limit=$(awk -v m="$train_minutes" -v e="$extra" -v s="$slow" 'BEGIN {printf "%d", (m * 60 + e) / s}')
    awk -v m="$train_minutes" 'BEGIN {exit !(m < 0.25)}' && limit=0  # too little left to train: skipped
    stage train "$limit" "$py" -m jess_geo.cli.main train --config configs/baseline_biocrust.yaml \
      --images "$data/images" --masks "$data/masks" --classes "$data/classes.json" --output-dir "$work/train" \
      --max-minutes "$train_minutes" --accelerator "$accelerator" --devices 1 "${train_args[@]}" --quiet
    [ -f "$work/train/metrics.json" ] && cp "$work/train/metrics.json" "$OUT/train.json"
    [ -f "$work/train/curves.csv" ] && cp "$work/train/curves.csv" "$OUT/train_curves.csv"
  fi
  echo
  "$py" benchmarks/gpu_summary.py "$OUT" --stages "$work/stages" --train-minutes "$train_minutes"
}

main 2>&1 | tee "$OUT/gpu_check.txt"
