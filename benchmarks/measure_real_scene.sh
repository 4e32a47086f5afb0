#!/usr/bin/env bash
# Issue 11 must-show on a real biocrust photo: stats with zones, change between two models'
# predictions, sample -> label from the ground-truth mask -> assess, and an interval check.
# Usage: benchmarks/measure_real_scene.sh MODEL1.pt MODEL2.pt WORKDIR
set -euo pipefail
M1=$1 M2=$2 W=$3
D=${DATA:-../shared/data/biocrust_usa}
S=stop_1_fall_2011
J=${JESS_GEO:-.venv/bin/jess-geo}
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$W"
$J predict "$D/images/$S.png" -m "$M1" -o "$W/${S}_classes.tif" --no-vector -q --overwrite
$J predict "$D/images/$S.png" -m "$M2" -o "$W/${S}_model2_classes.tif" --no-vector -q --overwrite
$PY benchmarks/measure_real_scene.py zones "$W/plots.gpkg"
$J stats "$W/${S}_classes.tif" --zones "$W/plots.gpkg" --zone-field plot --overwrite
$J change "$W/${S}_classes.tif" "$W/${S}_model2_classes.tif" --zones "$W/plots.gpkg" --zone-field plot \
    -o "$W/fall_model1_to_model2" --overwrite
$J sample "$W/${S}_classes.tif" --n 400 --min-per-class 20 -o "$W/fall_samples.gpkg" --overwrite
$PY benchmarks/measure_real_scene.py label "$W/fall_samples.gpkg" "$D/masks/$S.png"
$J assess "$W/${S}_classes.tif" --reference "$W/fall_samples.gpkg" --field class --overwrite
$J stats "$D/masks/$S.png" --classes "$D/classes.json" -o "$W/fall_truth_stats" --overwrite
$PY benchmarks/measure_real_scene.py coverage "$W/${S}_classes.tif" "$D/masks/$S.png" 400 300
