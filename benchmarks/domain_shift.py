"""Baseline against JESS under domain shift: same seeds, same labelled batches, target labels only score.

Splits of ../shared/data/biocrust_usa (5 labelled hand-held photos of biocrust, 8 classes):

1. camera: the four dated photos are the source (stop_1_fall_2011, stop_5_fall_2011 and
   stop_1_spring_2012 train; stop_5_attempt_2_spring_2012 validates); stop_2_repaired_a is held
   apart and passed through CAMERA (below) to play an unseen camera. The transformed photo is the
   unlabelled target; its labels only score. The baseline is also scored on the untransformed
   photo (`clean`), which measures how much of the loss is the camera rather than the site.
2. season: the two *_fall_2011 photos train, the two *_spring_2012 photos are the target.
   stop_2_repaired_a has no season in its name, so it is in neither domain; it serves only as
   the source validation image (checkpoint selection by source validation mIoU).

CAMERA, applied at the photo's native resolution, in this order (deterministic):
   resolution  downscale x0.6 (bicubic), upscale back to the original size (bicubic)
   white bal.  warm colour temperature: R x1.10, G x1.00, B x0.80
   exposure    contrast x0.75 about mid-grey 128, brightness +20
   optics      Gaussian blur, radius 1.5 px
   sensor      Gaussian noise, std 6 (8-bit units), numpy seed 0
   encoding    JPEG quality 40 (the target file is this JPEG)

Each (split, seed) trains a baseline and a JESS model with the same config except the method
(the same source crops and augmentations in the same order: JESS draws its target crops and
their augmentation from separate generators). Arms: `jess-split` (JESS as shipped: BatchNorm
statistics per domain in the shared pass, the model saved with the target's, `jess_batchnorm:
split`); `split-BN` (the same shared pass with lambda 0: what the per-domain BatchNorm does
without the energy term); `jess` (`jess_batchnorm: mixed`, statistics over both domains),
`jess-srcBN` (source statistics for both) and `mixed-BN` (mixed, lambda 0). Every baseline run is
also scored as `baseline+AdaBN`: the same model with its BatchNorm statistics re-estimated on
64 random crops of the unlabelled target images (no training; Li et al. 2016).
Scores: evaluate_model at native resolution on the model each run keeps (best source
validation mIoU, no target labels involved), and the per-epoch target metrics (working
resolution) averaged over epochs in the paper's 20-80 % window. Energies: the mean free energy
of the source validation photo(s) and of the target photos under each model, from the model's
logits; for seed 0 also read back from `jess-geo predict --energy` GeoTIFFs.

    JESS_PRIO=1 .venv/bin/python benchmarks/domain_shift.py [--seeds 0 1 2] [--epochs 12]
        [--samples-per-epoch 96] [--arms baseline jess-split split-BN] [--parallel 2] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from child_queue import run_queue  # noqa: E402  (benchmarks/ is the script folder)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "biocrust_usa"
CLI = Path(sys.executable).parent / "jess-geo"

SPLITS: dict[str, dict[str, list[str]]] = {
    "camera": {
        "train": ["stop_1_fall_2011", "stop_5_fall_2011", "stop_1_spring_2012"],
        "val": ["stop_5_attempt_2_spring_2012"],
        "target": ["stop_2_repaired_a"],
    },
    "season": {
        "train": ["stop_1_fall_2011", "stop_5_fall_2011"],
        "val": ["stop_2_repaired_a"],
        "target": ["stop_1_spring_2012", "stop_5_attempt_2_spring_2012"],
    },
}
# arm -> (method, lambda (None: --energy-weight), BatchNorm statistics in the shared pass)
ARM_METHOD = {
    "baseline": ("baseline", None, "mixed"),
    "jess": ("jess", None, "mixed"),
    "jess-srcBN": ("jess", None, "source"),
    "mixed-BN": ("jess", 0.0, "mixed"),
    "jess-split": ("jess", None, "split"),
    "split-BN": ("jess", 0.0, "split"),
}


# --------------------------------------------------------------------------------------- data
def camera_transform(src: Path, dst: Path) -> None:
    """Write ``src`` as seen by the simulated target camera (see CAMERA in the module docstring)."""
    from PIL import Image, ImageFilter

    im = Image.open(src).convert("RGB")
    w, h = im.size
    im = im.resize((round(w * 0.6), round(h * 0.6)), Image.BICUBIC).resize((w, h), Image.BICUBIC)
    a = np.asarray(im).astype(np.float32)
    a *= np.array([1.10, 1.00, 0.80], dtype=np.float32)
    a = (a - 128.0) * 0.75 + 128.0 + 20.0
    im = Image.fromarray(np.clip(a, 0, 255).round().astype(np.uint8)).filter(ImageFilter.GaussianBlur(1.5))
    a = np.asarray(im).astype(np.float32) + np.random.default_rng(0).normal(0.0, 6.0, size=(h, w, 3)).astype(np.float32)
    Image.fromarray(np.clip(a, 0, 255).round().astype(np.uint8)).save(dst, format="JPEG", quality=40)


def _link(stems: list[str], folder: Path) -> None:
    for sub in ("images", "masks"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        for stem in stems:
            (folder / sub / f"{stem}.png").symlink_to(DATA / sub / f"{stem}.png")


def prepare(work: Path) -> dict[str, dict[str, Path]]:
    """Folders for every split: train, val, target (images + masks), and clean (camera only)."""
    out: dict[str, dict[str, Path]] = {}
    for name, parts in SPLITS.items():
        d = work / name
        if d.exists():
            shutil.rmtree(d)
        _link(parts["train"], d / "train")
        _link(parts["val"], d / "val")
        if name == "camera":
            _link(parts["target"], d / "clean")
            (d / "target" / "images").mkdir(parents=True)
            (d / "target" / "masks").mkdir(parents=True)
            for stem in parts["target"]:
                camera_transform(DATA / "images" / f"{stem}.png", d / "target" / "images" / f"{stem}.jpg")
                (d / "target" / "masks" / f"{stem}.png").symlink_to(DATA / "masks" / f"{stem}.png")
        else:
            _link(parts["target"], d / "target")
        out[name] = {k: d / k for k in ("train", "val", "target", "clean") if (d / k).exists()}
    return out


# -------------------------------------------------------------------------------------- child
def mean_energy(loaded: Any, images: Path) -> dict[str, float]:
    """Mean per-pixel free energy of each image (valid pixels), through the predict pipeline."""
    from jess_geo.inference.arrays import predict_arrays
    from jess_geo.inference.runtime import open_runtime
    from jess_geo.io.raster import list_rasters

    rt = open_runtime(loaded, "torch", "cpu")
    out = {}
    for p in list_rasters(images):
        e = predict_arrays(p, rt, loaded.metadata, keys=("energy",))["energy"]
        out[p.name] = float(np.nanmean(e))
    return out


def predict_energy(model: Path, image: Path, tmp: Path) -> float:
    """Mean of the energy GeoTIFF written by `jess-geo predict --energy` (NaN = nodata)."""
    import rasterio

    e = tmp / f"{image.stem}_energy.tif"
    subprocess.run(
        [str(CLI), "predict", str(image), "--model", str(model), "-o", str(tmp / f"{image.stem}_classes.tif"),
         "--no-vector", "--energy", str(e), "--overwrite", "--quiet", "--device", "cpu"],
        check=True, capture_output=True, text=True,
    )
    with rasterio.open(e) as src:
        return float(np.nanmean(src.read(1)))


def child(spec_path: Path) -> None:
    """One run: train, evaluate on the target at native resolution, energies; writes result.json."""
    spec = json.loads(spec_path.read_text())
    import torch

    torch.set_num_threads(spec["threads"])
    from jess_geo.models.modelfile import load_model_file
    from jess_geo.training.config import config_from_mapping
    from jess_geo.training.adabn import recalibrate_on_images
    from jess_geo.training.evaluate import evaluate_model
    from jess_geo.training.train import run_training

    cfg = config_from_mapping(spec["config"])
    t0 = time.perf_counter()
    res = run_training(cfg, progress_bar=False)
    train_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    loaded = load_model_file(res["model"])
    folders = {k: Path(v) for k, v in spec["folders"].items()}
    tgt = evaluate_model(loaded, folders["target"] / "images", folders["target"] / "masks")
    result: dict[str, Any] = {
        **{k: spec[k] for k in ("split", "arm", "seed")},
        "train_s": train_s, "best_epoch": res.get("best_epoch"), "epochs_run": res.get("epochs_run"),
        "target_accuracy": tgt["accuracy"], "target_miou": tgt["miou"],
        "val_accuracy": res.get("val_accuracy"), "val_miou": res.get("val_miou"),
    }
    if spec["arm"] == "baseline" and "clean" in folders:
        clean = evaluate_model(loaded, folders["clean"] / "images", folders["clean"] / "masks")
        result["clean_accuracy"], result["clean_miou"] = clean["accuracy"], clean["miou"]
    if spec["arm"] == "baseline":  # the AdaBN control: the baseline with target BatchNorm statistics
        adabn = load_model_file(res["model"])
        recalibrate_on_images(adabn, folders["target"] / "images", crop=cfg.data.crop_size, batch=cfg.data.batch_size, seed=spec["seed"])
        ada = evaluate_model(adabn, folders["target"] / "images", folders["target"] / "masks")
        result["adabn_accuracy"], result["adabn_miou"] = ada["accuracy"], ada["miou"]
    es, et = mean_energy(loaded, folders["val"] / "images"), mean_energy(loaded, folders["target"] / "images")
    result["energy_source"] = statistics.fmean(es.values())
    result["energy_target"] = statistics.fmean(et.values())
    if spec["seed"] == spec["predict_seed"]:
        with tempfile.TemporaryDirectory() as tmp:
            src_img = sorted((folders["val"] / "images").iterdir())[0]
            tgt_imgs = sorted((folders["target"] / "images").iterdir())
            result["predict_energy_source"] = predict_energy(Path(res["model"]), src_img, Path(tmp))
            result["predict_energy_target"] = statistics.fmean(predict_energy(Path(res["model"]), p, Path(tmp)) for p in tgt_imgs)
    result["eval_s"] = time.perf_counter() - t1
    out = Path(cfg.output_dir)
    with open(out / "curves.csv", newline="") as f:
        result["curves"] = list(csv.DictReader(f))
    (Path(spec["result"])).write_text(json.dumps(result))


# ------------------------------------------------------------------------------------- driver
def _f(v: Any) -> float | None:
    return None if v in (None, "") else float(v)


def window_mean(rows: list[dict[str, Any]], key: str, lo: float = 0.2, hi: float = 0.8) -> float | None:
    """Mean of ``key`` over the epochs in the [lo, hi] fraction of the run (the paper's 20-80 %)."""
    n = len(rows)
    vals = [_f(r.get(key)) for i, r in enumerate(rows) if lo * n <= i + 1 <= hi * n or n < 3]
    vals = [v for v in vals if v is not None]
    return statistics.fmean(vals) if vals else None


def mean_se(values: list[float]) -> tuple[float, float]:
    m = statistics.fmean(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return m, se


def fmt(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    m, se = mean_se([scale * v for v in values])
    return f"{m:.{digits}f} ± {se:.{digits}f}"


def run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="jess_shift_"))
    work.mkdir(parents=True, exist_ok=True)
    folders = prepare(work)
    jobs = []
    for split in args.splits:
        for seed in args.seeds:
            for arm in args.arms:
                method, lam, bn = ARM_METHOD[arm]
                f = folders[split]
                out = work / "runs" / f"{split}_{arm}_s{seed}"
                if out.exists():
                    shutil.rmtree(out)
                cfg = {
                    "images": str(f["train"] / "images"), "masks": str(f["train"] / "masks"),
                    "val_images": str(f["val"] / "images"), "val_masks": str(f["val"] / "masks"),
                    "classes": str(DATA / "classes.json"), "output_dir": str(out), "seed": seed,
                    "photo_scale": args.photo_scale, "crop_size": args.crop, "batch_size": args.batch_size,
                    "lr": args.lr, "epochs": args.epochs, "samples_per_epoch": args.samples_per_epoch,
                    "warmup_epochs": 1, "val_crop": 512, "accelerator": "cpu", "method": method,
                    "target_images": str(f["target"] / "images"), "target_masks": str(f["target"] / "masks"),
                    "energy_weight": args.energy_weight if lam is None else lam, "jess_batchnorm": bn,
                    "energy_reg": args.energy_reg,
                }
                spec = {"split": split, "arm": arm, "seed": seed, "config": cfg, "threads": args.threads,
                        "folders": {k: str(v) for k, v in f.items()}, "predict_seed": args.seeds[0],
                        "result": str(work / "runs" / f"{split}_{arm}_s{seed}.json")}
                jobs.append(spec)
    (work / "runs").mkdir(exist_ok=True)
    results: list[dict[str, Any]] = []
    print(f"{len(jobs)} runs, {args.parallel} at a time, work folder {work}", flush=True)
    finished = run_queue(jobs, lambda spec, sp: [sys.executable, __file__, "--child", str(sp)],
                         lambda spec: Path(spec["result"]).with_suffix(".spec.json"),
                         lambda spec: Path(spec["result"]).with_suffix(".log"), args.parallel)
    for spec, code, seconds in finished:
        if code != 0:
            print(f"run {spec['split']} {spec['arm']} seed {spec['seed']} FAILED (see {Path(spec['result']).with_suffix('.log')})", flush=True)
            continue
        r = json.loads(Path(spec["result"]).read_text())
        r["wall_s"] = seconds
        results.append(r)
        print(f"  {r['split']:<7}{r['arm']:<9} seed {r['seed']}: target acc {100 * r['target_accuracy']:.1f} %, "
              f"mIoU {100 * r['target_miou']:.1f} %, train {r['train_s'] / 60:.1f} min, run {r['wall_s'] / 60:.1f} min", flush=True)
    return results


ADABN = "baseline+AdaBN"


def with_adabn(results: list[dict[str, Any]], arms: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """Add the AdaBN control as an arm of its own: each baseline model with its BatchNorm statistics
    re-estimated on the unlabelled target images (no training; scored like the others)."""
    extra = [dict(r, arm=ADABN, target_accuracy=r["adabn_accuracy"], target_miou=r["adabn_miou"], curves=[], virtual=True)
             for r in results if r["arm"] == "baseline" and r.get("adabn_accuracy") is not None]
    if not extra:
        return results, arms
    i = arms.index("baseline") + 1 if "baseline" in arms else len(arms)
    return results + extra, arms[:i] + [ADABN] + arms[i:]


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines: list[str] = []
    splits = [s for s in args.splits if any(r["split"] == s for r in results)]
    results, arms = with_adabn(results, list(args.arms))
    steps = args.epochs * max(1, args.samples_per_epoch // args.batch_size)
    lines.append(f"Recipe: photo_scale {args.photo_scale}, crop {args.crop}, batch {args.batch_size}, AdamW lr {args.lr} "
                 f"(1 warm-up epoch, cosine), {args.epochs} epochs x {steps // args.epochs} steps = {steps} steps per run, "
                 f"lambda {args.energy_weight}, energy guard {args.energy_reg}, ImageNet EfficientNet-Lite0 U-Net; seeds {args.seeds}; "
                 f"{args.parallel} runs at a time, {args.threads} torch thread(s) each.")
    lines.append("")
    lines.append("| split | method | runs | target acc % (native) | target mIoU % (native) | target acc % (epochs 20-80 %) | "
                 "target mIoU % (epochs 20-80 %) | source val mIoU % | run wall time, min (each) |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for split in splits:
        for arm in arms:
            rs = sorted((r for r in results if r["split"] == split and r["arm"] == arm), key=lambda r: r["seed"])
            if not rs:
                continue
            late_acc = [window_mean(r["curves"], "target_accuracy") for r in rs]
            late_miou = [window_mean(r["curves"], "target_miou") for r in rs]
            walls = ", ".join(f"{r['wall_s'] / 60:.1f}" for r in rs)
            lines.append(f"| {split} | {arm} | {len(rs)} | {fmt([r['target_accuracy'] for r in rs])} | {fmt([r['target_miou'] for r in rs])} "
                         f"| {fmt(late_acc)} | {fmt(late_miou)} | {fmt([r['val_miou'] for r in rs])} | {walls} |")
    lines.append("")
    lines.append("Paired differences (method - baseline, same seed), percentage points, mean ± s.e.:")
    lines.append("")
    lines.append("| split | method | Δ acc (native) | Δ mIoU (native) | Δ acc (20-80 %) | Δ mIoU (20-80 %) | seeds better (acc native) |")
    lines.append("|---|---|---|---|---|---|---|")
    for split in splits:
        base = {r["seed"]: r for r in results if r["split"] == split and r["arm"] == "baseline"}
        for arm in arms:
            if arm == "baseline":
                continue
            pairs = [(base[r["seed"]], r) for r in results if r["split"] == split and r["arm"] == arm and r["seed"] in base]
            if not pairs:
                continue
            d = lambda k: [o[k] - b[k] for b, o in pairs]  # noqa: E731
            def dl(k: str) -> list[float]:
                vals = [(window_mean(o["curves"], k), window_mean(b["curves"], k)) for b, o in pairs]
                return [a - c for a, c in vals if a is not None and c is not None]

            better = sum(o["target_accuracy"] > b["target_accuracy"] for b, o in pairs)
            lines.append(f"| {split} | {arm} | {fmt(d('target_accuracy'))} | {fmt(d('target_miou'))} | {fmt(dl('target_accuracy'))} "
                         f"| {fmt(dl('target_miou'))} | {better}/{len(pairs)} |")
    clean = [r for r in results if r.get("clean_accuracy") is not None and not r.get("virtual")]
    if clean:
        lines.append("")
        lines.append(f"Camera-shift cost for the baseline (same held-out photo, untransformed vs transformed, native resolution): "
                     f"accuracy {fmt([r['clean_accuracy'] for r in clean])} % -> {fmt([r['target_accuracy'] for r in clean])} %, "
                     f"mIoU {fmt([r['clean_miou'] for r in clean])} % -> {fmt([r['target_miou'] for r in clean])} %.")
    lines.append("")
    lines.append("Mean free energy (logits of each kept model, valid pixels; source = the source validation photo, "
                 "target = the target photos); gap = target - source; `predict` = read back from `jess-geo predict --energy` (seed "
                 f"{args.seeds[0]}):")
    lines.append("")
    lines.append("| split | method | E source | E target | gap | predict: E source | E target | gap |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for split in splits:
        for arm in arms:
            rs = [r for r in results if r["split"] == split and r["arm"] == arm and not r.get("virtual")]
            if not rs:
                continue
            p = [r for r in rs if r.get("predict_energy_source") is not None]
            pe = (f"{p[0]['predict_energy_source']:.2f} | {p[0]['predict_energy_target']:.2f} | "
                  f"{p[0]['predict_energy_target'] - p[0]['predict_energy_source']:+.2f}") if p else "- | - | -"
            lines.append(f"| {split} | {arm} | {fmt([r['energy_source'] for r in rs], 1, 2)} | {fmt([r['energy_target'] for r in rs], 1, 2)} "
                         f"| {fmt([r['energy_target'] - r['energy_source'] for r in rs], 1, 2)} | {pe} |")
    lines.append("")
    lines.append("Curve evidence (baseline, mean over seeds): source validation mIoU % and train CE averaged over the last "
                 "quarter of epochs vs the quarter before it; target accuracy % likewise:")
    lines.append("")
    lines.append("| split | method | val mIoU: 3rd quarter -> last quarter | train CE | target acc | best epoch (each) |")
    lines.append("|---|---|---|---|---|---|")
    for split in splits:
        for arm in arms:
            rs = [r for r in results if r["split"] == split and r["arm"] == arm and not r.get("virtual")]
            if not rs:
                continue
            cells = []
            for key, scale in (("val_miou", 100.0), ("train_ce", 1.0), ("target_accuracy", 100.0)):
                q3 = [window_mean(r["curves"], key, 0.5, 0.75) for r in rs]
                q4 = [window_mean(r["curves"], key, 0.75, 1.0) for r in rs]
                d = 1 if scale == 100.0 else 3
                cells.append(f"{scale * statistics.fmean(q3):.{d}f} -> {scale * statistics.fmean(q4):.{d}f}")
            lines.append(f"| {split} | {arm} | {' | '.join(cells)} | {', '.join(str(r['best_epoch']) for r in rs)} |")
    return "\n".join(lines)


def write_outputs(results: list[dict[str, Any]], text: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "domain_shift.md").write_text("# Domain shift: baseline vs JESS\n\n" + (__doc__ or "").split("\n\n    JESS_PRIO")[0]
                                        .replace("\n", "\n") + "\n\n" + text + "\n")
    keys = ["split", "arm", "seed", "target_accuracy", "target_miou", "late_target_accuracy", "late_target_miou",
            "val_accuracy", "val_miou", "clean_accuracy", "clean_miou", "energy_source", "energy_target",
            "predict_energy_source", "predict_energy_target", "best_epoch", "epochs_run", "train_s", "eval_s", "wall_s"]
    with open(out / "domain_shift.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        for r in sorted(results, key=lambda r: (r["split"], r["arm"], r["seed"])):
            row = dict(r, late_target_accuracy=window_mean(r["curves"], "target_accuracy"),
                       late_target_miou=window_mean(r["curves"], "target_miou"))
            w.writerow({k: row.get(k) for k in keys})
    ckeys = ["epoch", "step", "minutes", "train_ce", "train_energy_source", "train_energy_target", "val_accuracy", "val_miou",
             "target_accuracy", "target_miou", "source_energy", "target_energy", "energy_gap"]
    with open(out / "domain_shift_curves.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["split", "arm", "seed", *ckeys])
        for r in sorted(results, key=lambda r: (r["split"], r["arm"], r["seed"])):
            for c in r["curves"]:
                w.writerow([r["split"], r["arm"], r["seed"], *[c.get(k, "") for k in ckeys]])
    (out / "domain_shift_runs.json").write_text(json.dumps(results))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--splits", nargs="+", default=["camera", "season"], choices=list(SPLITS))
    ap.add_argument("--arms", nargs="+", default=["baseline", "jess-split", "split-BN"], choices=list(ARM_METHOD))
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--samples-per-epoch", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--photo-scale", type=float, default=0.5)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--energy-weight", type=float, default=0.01)
    ap.add_argument("--energy-reg", type=float, default=1e-3, help="squared-energy guard (energies bounded at 1 / (2 reg))")
    ap.add_argument("--parallel", type=int, default=2, help="runs at a time (baseline and JESS of a seed side by side)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run")
    ap.add_argument("--work", help="work folder (default: a new temporary folder)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--report-only", nargs="+", help="rebuild the report from domain_shift_runs.json file(s) (merged)")
    args = ap.parse_args(argv)
    if args.child:
        child(Path(args.child))
        return 0
    os.environ.setdefault("JESS_PRIO", "1")
    if not DATA.is_dir():
        print(f"{DATA} not found", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    results = [r for f in args.report_only for r in json.loads(Path(f).read_text())] if args.report_only else run_all(args)
    text = report(results, args)
    print()
    print(text)
    print(f"\ntotal wall time {(time.perf_counter() - t0) / 60:.1f} min")
    write_outputs(results, text, Path(args.out))
    print(f"written: {Path(args.out) / 'domain_shift.md'}, domain_shift.csv, domain_shift_curves.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
