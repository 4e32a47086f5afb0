"""The run summary beside a batch's outputs: one row per scene, CSV and JSON, written atomically."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Sequence

from jess_geo.cover import csv_text
from jess_geo.inference.batch import SceneRecord
from jess_geo.io.atomic import atomic_output

SUMMARY = "predict_summary"
COLUMNS = ("scene", "status", "seconds", "tiles", "valid_pixels")


def summary_paths(output_dir: str | Path) -> tuple[Path, Path]:
    """``predict_summary.csv`` and ``predict_summary.json`` in ``output_dir``."""
    d = Path(output_dir)
    return d / f"{SUMMARY}.csv", d / f"{SUMMARY}.json"


def class_names(records: Sequence[SceneRecord]) -> list[str]:
    """Every class named in any record's cover, in first-seen order."""
    names: list[str] = []
    for r in records:
        names += [n for n in r.cover if n not in names]
    return names


def summary_json(records: Sequence[SceneRecord], model: str) -> dict[str, Any]:
    """The JSON summary: counts, then one object per scene."""
    counts = {s: sum(r.status == s for r in records) for s in ("done", "skipped", "failed", "not run")}
    return {"model": model, "scenes": len(records), **counts, "records": [r.to_json() for r in records]}


def write_summary(records: Sequence[SceneRecord], output_dir: str | Path, *, model: str = "") -> tuple[Path, Path]:
    """Write both summaries (each under a temporary name, then renamed); returns their paths."""
    csv_path, json_path = summary_paths(output_dir)
    names = class_names(records)
    with atomic_output(csv_path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow([*COLUMNS, *(f"percent_{csv_text(n)}" for n in names), "classes", "error"])
            for r in records:
                w.writerow([csv_text(r.scene), r.status, f"{r.seconds:.3f}", r.tiles, r.valid_pixels,
                            *(f"{r.cover[n]:.4f}" if n in r.cover else "" for n in names),
                            csv_text(r.outputs.get("classes") or ""), csv_text(r.error or "")])
    with atomic_output(json_path) as tmp:
        tmp.write_text(json.dumps(summary_json(records, model), indent=2) + "\n", encoding="utf-8")
    return csv_path, json_path
