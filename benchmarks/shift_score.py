"""Shift score benchmark: does `jess-geo check`'s score separate shifted photos from unshifted ones?

Leave-one-photo-out on ../shared/data/biocrust_usa (5 labelled hand-held biocrust photos):
for each photo, a baseline model trained on the other four (`jess-geo train`, which stores the
training crops' feature statistics in the model file) scores the held-out photo as it is
(unshifted) and passed through CAMERA (benchmarks/domain_shift.py, imported: shifted).
Season: two models each trained on one *_fall_2011 photo (validated on stop_2_repaired_a)
score the other fall photo (unshifted) and the two *_spring_2012 photos (shifted).
Each photo is scored by every measure from one pass over the same tiles (measure_scene):
the shift score with each Gaussian distance (kl, w2, smd) against the stored statistics, the
kl score against the BatchNorm running statistics (the fallback for old model files), mean
entropy and mean free energy. ROC AUC = P(score of a shifted photo > score of an unshifted one),
pooled over the models (one threshold for all); higher score = flagged as shifted.

Usage: nice -n 10 .venv/bin/python benchmarks/shift_score.py [--work DIR] [--jobs 2]
Recipe (small, stated): photo_scale 0.5, crop 256, batch 8, 8 epochs x 8 steps = 64 steps,
ImageNet EfficientNet-Lite0 U-Net, seed 0, 1 torch thread per process, 2 trainings at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from domain_shift import CLI, DATA, ROOT, camera_transform  # noqa: E402

STEMS = ["stop_1_fall_2011", "stop_1_spring_2012", "stop_2_repaired_a", "stop_5_attempt_2_spring_2012", "stop_5_fall_2011"]
FALL = ["stop_1_fall_2011", "stop_5_fall_2011"]
SPRING = ["stop_1_spring_2012", "stop_5_attempt_2_spring_2012"]
RECIPE = {
    "method": "baseline",
    "data": {"photo_scale": 0.5, "crop_size": 256, "batch_size": 8, "samples_per_epoch": 64, "val_fraction": 0.25, "val_crop": 512},
    "model": {"encoder": "timm-tf_efficientnet_lite0", "encoder_weights": "imagenet",
              "decoder_channels": [128, 64, 32, 16, 16], "tile_size": 512, "overlap": 64},
    "optim": {"optimizer": "adamw", "lr": 0.001, "weight_decay": 0.0001, "scheduler": "cosine", "warmup_epochs": 1},
    "trainer": {"epochs": 8}, "seed": 0,
}
MEASURES = ["kl", "w2", "smd", "kl (fallback: BN running stats)", "entropy", "free energy"]


def _link(stems: list[str], folder: Path) -> Path:
    for sub in ("images", "masks"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        for stem in stems:
            link = folder / sub / f"{stem}.png"
            if not link.exists():
                link.symlink_to(DATA / sub / f"{stem}.png")
    return folder


def runs(work: Path) -> list[dict[str, Any]]:
    """Every model to train: its folder, training images, validation images, photos to score."""
    out = []
    for stem in STEMS:
        d = work / f"loo_{stem}"
        out.append({"name": f"loo_{stem}", "dir": d, "train": _link([s for s in STEMS if s != stem], d / "train"),
                    "val": None, "clean": [stem], "shifted": [("camera", stem)]})
    for stem in FALL:
        d = work / f"season_{stem}"
        other = [s for s in FALL if s != stem]
        out.append({"name": f"season_{stem}", "dir": d, "train": _link([stem], d / "train"),
                    "val": _link(["stop_2_repaired_a"], d / "val"), "clean": other, "shifted": [("season", s) for s in SPRING]})
    return out


def train_all(plan: list[dict[str, Any]], work: Path, jobs: int) -> None:
    import yaml

    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    todo = [r for r in plan if not (r["dir"] / "run" / "model.pt").exists()]
    active: list[tuple[dict[str, Any], subprocess.Popen, float]] = []
    while todo or active:
        while todo and len(active) < jobs:
            r = todo.pop(0)
            recipe = json.loads(json.dumps(RECIPE))
            if r["val"] is not None:
                recipe["data"].update(val_images=str(r["val"] / "images"), val_masks=str(r["val"] / "masks"))
            cfg = r["dir"] / "recipe.yaml"
            cfg.write_text(yaml.safe_dump(recipe, sort_keys=True), encoding="utf-8")
            cmd = ["nice", "-n", "10", str(CLI), "train", "--images", str(r["train"] / "images"), "--masks", str(r["train"] / "masks"),
                   "--classes", str(DATA / "classes.json"), "--config", str(cfg), "--output-dir", str(r["dir"] / "run"), "--quiet"]
            log = open(r["dir"] / "train.log", "w")
            active.append((r, subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT), time.time()))
        time.sleep(2)
        for item in list(active):
            r, proc, t0 = item
            if proc.poll() is not None:
                active.remove(item)
                print(f"trained {r['name']}: exit {proc.returncode}, {(time.time() - t0) / 60:.1f} min", flush=True)


def photo(kind: str, stem: str, work: Path) -> Path:
    """The photo to score: the original PNG, or its CAMERA-transformed JPEG."""
    if kind != "camera":
        return DATA / "images" / f"{stem}.png"
    dst = work / "camera" / f"{stem}.jpg"
    if not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        camera_transform(DATA / "images" / f"{stem}.png", dst)
    return dst


def score_all(plan: list[dict[str, Any]], work: Path) -> list[dict[str, Any]]:
    """One row per (model, photo): every measure from one pass over the photo's tiles."""
    from jess_geo.models.modelfile import load_model_file
    from jess_geo.shift.scene import measure_scene
    from jess_geo.shift.stats import running_statistics, shift_score

    rows = []
    for r in plan:
        model = r["dir"] / "run" / "model.pt"
        if not model.exists():
            print(f"skipped {r['name']}: no model", flush=True)
            continue
        loaded = load_model_file(model)
        stored = loaded.metadata.get("feature_stats")
        fallback = running_statistics(loaded.model)
        items = [("clean", "clean", s) for s in r["clean"]] + [(k, k, s) for k, s in r["shifted"]]
        for label, kind, stem in items:
            t0 = time.perf_counter()
            m = measure_scene(loaded, photo(kind, stem, work), reference=stored or fallback)
            row = {"model": r["name"], "split": "camera" if r["name"].startswith("loo") else "season", "photo": stem,
                   "shifted": label != "clean", "kind": label, "tiles": m.tiles, "seconds": round(time.perf_counter() - t0, 2),
                   "entropy": m.entropy, "free energy": m.energy, "stored": bool(stored)}
            for metric in ("kl", "w2", "smd"):
                row[metric] = shift_score(stored or fallback, m.stats or {}, metric)
            row["kl (fallback: BN running stats)"] = shift_score(fallback, m.stats or {}, "kl")
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def auc(pos: list[float], neg: list[float]) -> float:
    """P(pos > neg) + 0.5 P(tie), over every pair."""
    if not pos or not neg:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def report(rows: list[dict[str, Any]]) -> str:
    """The printed tables (markdown)."""
    lines = ["| split | measure | ROC AUC | unshifted (min-max) | shifted (min-max) | pairs shifted > unshifted, same model |",
             "|---|---|---|---|---|---|"]
    for split in ("camera", "season"):
        sub = [r for r in rows if r["split"] == split]
        for meas in MEASURES:
            pos = [r[meas] for r in sub if r["shifted"]]
            neg = [r[meas] for r in sub if not r["shifted"]]
            same = [(p[meas] > n[meas]) for p in sub if p["shifted"] for n in sub if not n["shifted"] and n["model"] == p["model"]]
            rng = lambda v: f"{min(v):.3f} - {max(v):.3f}" if v else "-"  # noqa: E731
            lines.append(f"| {split} | {meas} | {auc(pos, neg):.2f} | {rng(neg)} | {rng(pos)} | {sum(same)}/{len(same)} |")
    lines += ["", "| model | photo | kind | tiles | s | kl | w2 | smd | kl fallback | entropy | free energy |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['photo']} | {r['kind']} | {r['tiles']} | {r['seconds']} | {r['kl']:.3f} | {r['w2']:.3f} | "
                     f"{r['smd']:.3f} | {r['kl (fallback: BN running stats)']:.3f} | {r['entropy']:.3f} | {r['free energy']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/work/bench_models/shift"))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--no-train", action="store_true", help="score the models already trained")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    args.work.mkdir(parents=True, exist_ok=True)
    plan = runs(args.work)
    if not args.no_train:
        train_all(plan, args.work, args.jobs)
    rows = score_all(plan, args.work)
    text = report(rows)
    print(text)
    (args.work / "rows.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    out = ROOT / "benchmarks" / "results" / "shift_score_table.md"
    out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
