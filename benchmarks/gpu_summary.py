"""The headline figures of one benchmarks/gpu_check.sh run, against the issue-16 targets.

Reads predict.json, agree.json, steps.json and train.json from the output folder, prints one
line per figure and writes summary.json beside them. A missing file is reported as not measured.

    python benchmarks/gpu_summary.py OUT_DIR [--stages FILE] [--train-minutes M]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

PREDICT_TARGET = 0.70  # end to end at least 70 % of the bare forward throughput
STEP_TARGET = 1.6  # JESS step at most 1.6 baseline steps


def load(folder: Path, name: str) -> dict[str, Any] | None:
    """``folder/name`` as JSON, or None when missing or unreadable."""
    try:
        return json.loads((folder / name).read_text())
    except (OSError, ValueError):
        return None


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def predict_lines(p: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    lines, out = [], {}
    for row in p.get("compare", []):
        frac = row["fraction_of_bare"]["predict"]
        key = row["network"]
        out[key] = {"predict_mpx_s": row["mpx_per_s"]["predict"], "bare_mpx_s": row["mpx_per_s"]["bare"],
                    "fraction": frac, "polygons_mpx_s": row["mpx_per_s"].get("predict+polygons"),
                    "polygons_fraction": row["fraction_of_bare"].get("predict+polygons"),
                    "gpu_peak_mib": max((m.get("allocated", 0) for m in row["gpu_memory_mib"].values()), default=None)}
        poly = row["fraction_of_bare"].get("predict+polygons")
        lines.append(f"predict {key:<12} {row['mpx_per_s']['predict']:8.3g} Mpx/s end to end = {100 * frac:5.1f} % of bare "
                     f"{row['mpx_per_s']['bare']:.3g} Mpx/s (target >= {100 * PREDICT_TARGET:.0f} %: {verdict(frac >= PREDICT_TARGET)})"
                     + (f"; with polygons {100 * poly:.1f} %" if poly is not None else ""))
    if "best" in p:
        b = p["best"]
        lines.append(f"predict best sweep setting: tile {b['tile']}, batch {b['batch']}: {b['mpx_per_s']:.3g} Mpx/s")
        out["best"] = b
    return lines, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--stages", type=Path, default=None, help="'name exit-code' lines")
    ap.add_argument("--train-minutes", type=float, default=None)
    args = ap.parse_args(argv)
    summary: dict[str, Any] = {}
    lines = ["== summary"]
    if args.stages and args.stages.is_file():
        summary["stages"] = dict(line.split() for line in args.stages.read_text().splitlines() if line.strip())
        state = {"0": "ok", "skipped": "skipped (budget)", "124": "timed out", "137": "killed (time)"}
        lines.append("stages: " + ", ".join(f"{k} {state.get(v, 'exit ' + v)}" for k, v in summary["stages"].items()))
    p = load(args.out, "predict.json")
    if p:
        more, summary["predict"] = predict_lines(p)
        lines += more
    else:
        lines.append("predict: not measured")
    a = load(args.out, "agree.json")
    if a:
        d = a["device_vs_cpu"]
        summary["agreement"] = d["agreement"]
        lines.append(f"agreement on {a['scene']}: {100 * d['agreement']:.3f} % device vs CPU (target >= 99.5 %: {verdict(a['met'])})")
    else:
        lines.append("agreement: not measured")
    s = load(args.out, "steps.json")
    if s:
        summary["steps"] = {"ms_per_step": s["ms_per_step"], "ratio": s["ratio"], "batch_on_device": s.get("batch_on_device"),
                            "batch_on_device_error": s.get("batch_on_device_error")}
        ms = ", ".join(f"{k} {v:.1f} ms" for k, v in s["ms_per_step"].items())
        lines.append(f"training steps ({s['batch']} x {s['crop']} px, {'AMP' if s['amp'] else 'fp32'}): {ms}; "
                     f"JESS / baseline {s['ratio']:.2f} (target <= {STEP_TARGET}: {verdict(s['ratio'] <= STEP_TARGET)})")
        if s.get("batch_on_device_error"):
            lines.append(f"  with the batch on the device the step failed: {s['batch_on_device_error']}")
    else:
        lines.append("training steps: not measured")
    t = load(args.out, "train.json")
    if t and t.get("val_accuracy") is not None:
        summary["train"] = {k: t.get(k) for k in ("val_accuracy", "val_miou", "epochs_run", "minutes", "best_epoch", "encoder_weights")}
        lines.append(f"training run: validation accuracy {100 * t['val_accuracy']:.1f} %, mIoU {100 * (t.get('val_miou') or 0):.1f} % "
                     f"after {t.get('minutes', 0):.2f} min ({t.get('epochs_run')} epochs, budget {args.train_minutes} min)")
    else:
        lines.append("training run: no validation result")
    print("\n".join(lines))
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
