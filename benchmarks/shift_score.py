"""Shift score benchmark: does `jess-geo check`'s score separate shifted photos from unshifted ones?

Leave-one-photo-out on ../shared/data/biocrust_usa (5 labelled hand-held biocrust photos).
Camera: for each photo, the reference statistics come from the other four photos only; the
held-out photo is scored as it is (unshifted) and passed through CAMERA (benchmarks/
domain_shift.py, imported: shifted). Season: the reference is one *_fall_2011 photo plus
stop_2_repaired_a (the season split's source side); the other fall photo is unshifted, the two
*_spring_2012 photos are shifted (two folds).

Arms (which network sees the photos):
  imagenet  the U-Net `jess-geo train` starts from (ImageNet EfficientNet-Lite0 encoder, decoder
            initialised with seed 0), normalised with the reference photos' band statistics;
            forward passes only. The reference = `feature_statistics` over up to 16 crops of
            512 px of the reference photos (the same function `train` calls at save).
  trained   `--train`: leave-one-out baselines trained with `jess-geo train` (photo_scale 0.5,
            crop 256, batch 8, 8 epochs x 8 steps = 64 steps, 1 torch thread, 2 at a time),
            scored against the feature_stats `train` stored. Skipped when not trained.
Each photo is scored by every measure from one pass over the same tiles (measure_scene):
the shift score with each Gaussian distance (kl, w2, smd), the kl score against the network's
BatchNorm running statistics (the fallback for old model files), mean entropy and mean free
energy. ROC AUC = P(score of a shifted photo > score of an unshifted one) over all pairs,
pooled over folds (one threshold for all); higher = flagged as shifted.

Usage: nice -n 10 .venv/bin/python benchmarks/shift_score.py [--work DIR] [--train] [--jobs 2]
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


def _metadata(normalization: dict[str, list[float]]) -> dict[str, Any]:
    """Model metadata for the imagenet arm: the recipe's network, resolution and tiles."""
    from jess_geo.classes import load_class_table
    from jess_geo.models.factory import architecture_dict

    classes = load_class_table(DATA / "classes.json")
    m = RECIPE["model"]
    return {"architecture": architecture_dict(m["encoder"], 3, len(classes.names), m["decoder_channels"]),
            "bands": [1, 2, 3], "normalization": normalization, "classes": classes.to_list(), "ignore_index": 255,
            "resolution": {"gsd": None, "photo_scale": RECIPE["data"]["photo_scale"]},
            "tile_size": m["tile_size"], "overlap": m["overlap"]}


def imagenet_folds(work: Path) -> list[dict[str, Any]]:
    """Camera and season folds with the untrained ImageNet U-Net; references from the reference photos only."""
    import torch

    from jess_geo.classes import load_class_table
    from jess_geo.data.normalization import compute_stats
    from jess_geo.data.scenes import load_scene
    from jess_geo.models.factory import build_model, size_multiple
    from jess_geo.models.modelfile import LoadedModel
    from jess_geo.models.pretrained import load_pretrained_encoder
    from jess_geo.shift.reference import crop_batches, training_crops
    from jess_geo.shift.stats import feature_statistics

    torch.manual_seed(0)
    meta0 = _metadata({"mean": [0.0] * 3, "std": [1.0] * 3})
    net = build_model(meta0["architecture"])
    note = load_pretrained_encoder(net, RECIPE["model"]["encoder"], "imagenet")
    print(f"imagenet arm: encoder weights {note}", flush=True)
    net.eval()
    classes = load_class_table(DATA / "classes.json")
    res = meta0["resolution"]
    scenes = {s: load_scene(DATA / "images" / f"{s}.png", DATA / "masks" / f"{s}.png", classes, [1, 2, 3], res) for s in STEMS}
    plan = [("camera", f"loo_{s}", [o for o in STEMS if o != s], [("clean", s)], [("camera", s)]) for s in STEMS]
    plan += [("season", f"season_{s}", [s, "stop_2_repaired_a"], [("clean", o) for o in FALL if o != s],
              [("season", o) for o in SPRING]) for s in FALL]
    folds = []
    for split, name, refs, clean, shifted in plan:
        norm = compute_stats([scenes[r] for r in refs], seed=0)
        crops = training_crops([(scenes[r].image, scenes[r].valid) for r in refs], norm, RECIPE["model"]["tile_size"],
                               size_multiple(meta0["architecture"]), max_crops=16)
        ref = feature_statistics(net, crop_batches(crops))
        folds.append({"arm": "imagenet", "split": split, "name": name, "loaded": LoadedModel(net, _metadata(norm)),
                      "reference": ref, "items": clean + shifted})
    return folds


def _reference_from_photos(loaded: Any, stems: list[str]) -> dict[str, Any]:
    """feature_stats of a model file without them: its training photos through `record_feature_stats`'s crops."""
    from jess_geo.data.scenes import load_scene
    from jess_geo.models.factory import size_multiple
    from jess_geo.shift.reference import crop_batches, training_crops
    from jess_geo.shift.stats import feature_statistics

    meta = loaded.metadata
    scenes = [load_scene(DATA / "images" / f"{s}.png", None, None, meta["bands"], meta["resolution"]) for s in stems]
    crops = training_crops([(sc.image, sc.valid) for sc in scenes], meta["normalization"], int(meta["tile_size"]),
                           size_multiple(meta["architecture"]))
    return feature_statistics(loaded.model, crop_batches(crops))


def model_folds(paths: list[Path]) -> list[dict[str, Any]]:
    """One fold per trained model file (another helper's, or --train's): its training photos are the
    reference (stored feature_stats, else computed from them); the photos it was not trained on are
    scored: camera split clean vs CAMERA; season split (trained on fall photos only) the spring photos
    are shifted, the others not."""
    from jess_geo.models.modelfile import load_model_file

    folds = []
    for path in paths:
        loaded = load_model_file(path)
        train = [Path(p).stem for p in loaded.metadata["provenance"]["train_images"]]
        rest = [s for s in STEMS if s not in train]
        stored = loaded.metadata.get("feature_stats")
        ref = stored or _reference_from_photos(loaded, train)
        if set(train) <= set(FALL):
            split, items = "season", [("clean", s) for s in rest if s not in SPRING] + [("season", s) for s in rest if s in SPRING]
        else:
            split, items = "camera", [("clean", s) for s in rest] + [("camera", s) for s in rest]
        folds.append({"arm": "trained", "split": split, "name": f"{path.parent.parent.name}/{path.parent.name}",
                      "loaded": loaded, "reference": ref, "items": items, "stored": bool(stored)})
        print(f"trained fold {path}: split {split}, reference {'stored' if stored else 'computed from ' + str(train)}", flush=True)
    return folds


def score_all(folds: list[dict[str, Any]], work: Path) -> list[dict[str, Any]]:
    """One row per (fold, photo): every measure from one pass over the photo's tiles."""
    from jess_geo.shift.scene import measure_scene
    from jess_geo.shift.stats import running_statistics, shift_score

    rows = []
    for f in folds:
        fallback = running_statistics(f["loaded"].model)
        ref = f["reference"] or fallback
        for kind, stem in f["items"]:
            t0 = time.perf_counter()
            m = measure_scene(f["loaded"], photo(kind, stem, work), reference=ref)
            row = {"arm": f["arm"], "split": f["split"], "model": f["name"], "photo": stem, "kind": kind,
                   "shifted": kind != "clean", "tiles": m.tiles, "seconds": round(time.perf_counter() - t0, 2),
                   "entropy": m.entropy, "free energy": m.energy, "stored": f.get("stored", False)}
            for metric in ("kl", "w2", "smd"):
                row[metric] = shift_score(ref, m.stats or {}, metric)
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
    lines = ["| arm | split | measure | ROC AUC | unshifted (min-max) | shifted (min-max) | pairs shifted > unshifted, same fold |",
             "|---|---|---|---|---|---|---|"]
    arms = list(dict.fromkeys(r["arm"] for r in rows))  # in the order given
    for arm, split in [(a, s) for a in arms for s in ("camera", "season")]:
        sub = [r for r in rows if r["split"] == split and r["arm"] == arm]
        if not sub:
            continue
        for meas in MEASURES:
            pos = [r[meas] for r in sub if r["shifted"]]
            neg = [r[meas] for r in sub if not r["shifted"]]
            same = [(p[meas] > n[meas]) for p in sub if p["shifted"] for n in sub if not n["shifted"] and n["model"] == p["model"]]
            rng = lambda v: f"{min(v):.3f} - {max(v):.3f}" if v else "-"  # noqa: E731
            lines.append(f"| {arm} | {split} | {meas} | {auc(pos, neg):.2f} | {rng(neg)} | {rng(pos)} | {sum(same)}/{len(same)} |")
    lines += ["", "| arm | fold | photo | kind | tiles | s | kl | w2 | smd | kl fallback | entropy | free energy |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['arm']} | {r['model']} | {r['photo']} | {r['kind']} | {r['tiles']} | {r['seconds']} | {r['kl']:.3f} | {r['w2']:.3f} | "
                     f"{r['smd']:.3f} | {r['kl (fallback: BN running stats)']:.3f} | {r['entropy']:.3f} | {r['free energy']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/work/bench_models/shift"))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--train", action="store_true", help="also train the leave-one-out baselines (slow on a busy CPU)")
    ap.add_argument("--models", type=Path, nargs="*", default=[], help="trained model files to score too (camera or season split)")
    ap.add_argument("--no-imagenet", action="store_true", help="skip the untrained-network arm")
    ap.add_argument("--tag", default=None, help="name the saved rows rows_TAG.json (default: rows / rows_models); only --models are scored")
    ap.add_argument("--report", nargs="*", default=None, metavar="ROWS.json=ARM",
                    help="only print the tables from saved rows (the rows of ARM in each file)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    if args.report is not None:
        rows = []
        for spec in args.report:
            path, arm = spec.split("=")
            rows += [r for r in json.loads(Path(path).read_text(encoding="utf-8")) if r["arm"] == arm]
        text = report(rows)
        print(text)
        (ROOT / "benchmarks" / "results" / "shift_score_table.md").write_text(text + "\n", encoding="utf-8")
        return 0
    args.work.mkdir(parents=True, exist_ok=True)
    plan = runs(args.work)
    if args.train:
        train_all(plan, args.work, args.jobs)
    loo = [r["dir"] / "run" / "model.pt" for r in plan if (r["dir"] / "run" / "model.pt").exists() and not args.tag]
    folds = ([] if args.no_imagenet else imagenet_folds(args.work)) + model_folds(list(args.models) + loo)
    rows = score_all(folds, args.work)
    text = report(rows)
    print(text)
    tag = f"_{args.tag}" if args.tag else ("_models" if args.no_imagenet else "")
    (args.work / f"rows{tag}.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    if not args.no_imagenet:
        (ROOT / "benchmarks" / "results" / "shift_score_table.md").write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
