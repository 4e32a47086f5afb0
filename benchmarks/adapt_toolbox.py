"""Every adaptation method on the camera and season shifts, paired with the baseline of the same seed.

The splits, the CAMERA transform and the folders come from benchmarks/domain_shift.py (imported).

Step 1, `train`: one baseline source model per (split, seed), the equal small budget of the
shared benchmarks (photo_scale 0.5, crop 256, batch 8, --epochs x --samples-per-epoch / 8
steps), saved to /work/bench_models/adapt/<split>/seed<k>/baseline.pt (READY written when all
exist). Step 2, `apply`: each method applied to each baseline, each (method, split, seed) in its
own process; every model is scored with evaluate_model (the predict pipeline, native
resolution) on every target photo, and on the camera split's untransformed photo (`clean`).
Step 3, `report`: tables (mean ± s.e. over seeds, paired Δ with the baseline, seeds better),
written to benchmarks/results/adapt_toolbox.md and .csv.

    nice -n 10 .venv/bin/python benchmarks/adapt_toolbox.py train [--seeds 0 1 2] [--parallel 2]
    nice -n 10 .venv/bin/python benchmarks/adapt_toolbox.py apply --methods adabn jess ... [--parallel 2]
    .venv/bin/python benchmarks/adapt_toolbox.py report

``--recipe configs/cpu_biocrust.yaml`` trains the baselines with a shipped recipe instead (its
data, model, optimiser, loss and epochs; the split's photos, the seed and the CPU from here), the
models a user of the default recipe has; ``ADAPT_MODELS=DIR`` keeps such a set apart from the
small-budget one (default /work/bench_models/adapt).

Camera-simulation arms (`--jobs split:camsim:SEED`, see CAMSIM_ARMS): `adapt --method camsim` on
the split's labelled training photos, from the baseline or (`histmatch+...`) from the cheap
arm's histmatch model, scored on the whole target like the cheap arms.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from child_queue import niced, run_queue  # noqa: E402
from domain_shift import DATA, ROOT, SPLITS, fmt, mean_se, prepare  # noqa: E402

MODELS = Path(os.environ.get("ADAPT_MODELS", "/work/bench_models/adapt"))
WORK = MODELS / "work"
RESULTS = Path(os.environ.get("ADAPT_RESULTS", ROOT / "benchmarks" / "results"))


# ------------------------------------------------------------------------------------- folders
def folders(work: Path = WORK) -> dict[str, dict[str, Path]]:
    """The split folders of domain_shift.prepare, made once and reused by every later step."""
    done = work / "prepared.json"
    if done.exists():
        return {s: {k: Path(v) for k, v in d.items()} for s, d in json.loads(done.read_text()).items()}
    work.mkdir(parents=True, exist_ok=True)
    out = prepare(work)
    done.write_text(json.dumps({s: {k: str(v) for k, v in d.items()} for s, d in out.items()}))
    return out


def baseline_path(split: str, seed: int) -> Path:
    return MODELS / split / f"seed{seed}" / "baseline.pt"


def base_config(f: dict[str, Path], out: Path, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """The shared small recipe of the domain-shift benchmarks (or ``--recipe``), source data of one split."""
    data = {
        "images": str(f["train"] / "images"), "masks": str(f["train"] / "masks"),
        "val_images": str(f["val"] / "images"), "val_masks": str(f["val"] / "masks"),
        "classes": str(DATA / "classes.json"), "output_dir": str(out), "seed": seed, "accelerator": "cpu",
        "method": "baseline",
    }
    if getattr(args, "recipe", None):
        from jess_geo.training.config import flatten, read_config_file

        recipe = flatten(read_config_file(args.recipe))
        recipe.pop("val_fraction", None)  # the split's validation photo instead
        return {**recipe, **data}
    return {**data, "photo_scale": 0.5, "crop_size": 256, "batch_size": 8, "lr": 1e-3, "epochs": args.epochs,
            "samples_per_epoch": args.samples_per_epoch, "warmup_epochs": 1, "val_crop": 512}


# --------------------------------------------------------------------------------------- score
def score(model: Any, f: dict[str, Path], prefix: str = "") -> dict[str, Any]:
    """Accuracy and mIoU on every target photo (and the camera's clean photo), native resolution."""
    from jess_geo.training.evaluate import evaluate_model

    out: dict[str, Any] = {}
    for part in ("target", "clean"):
        if part not in f:
            continue
        r = evaluate_model(model, f[part] / "images", f[part] / "masks", device="cpu")
        out[f"{prefix}{part}_accuracy"], out[f"{prefix}{part}_miou"] = r["accuracy"], r["miou"]
        out[f"{prefix}{part}_images"] = r["images"]
    return out


# --------------------------------------------------------------------------------------- child
def child_train(spec: dict[str, Any]) -> dict[str, Any]:
    from jess_geo.training.config import config_from_mapping
    from jess_geo.training.train import run_training

    cfg = config_from_mapping(spec["config"])
    t0 = time.perf_counter()
    res = run_training(cfg, progress_bar=False, overwrite=True)
    train_s = time.perf_counter() - t0
    dst = Path(spec["model"])
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".part")
    shutil.copyfile(res["model"], tmp)
    os.replace(tmp, dst)
    return {"train_s": train_s, "best_epoch": res.get("best_epoch"), "val_accuracy": res.get("val_accuracy"),
            "val_miou": res.get("val_miou")}


def child(spec_path: Path) -> None:
    spec = json.loads(spec_path.read_text())
    import torch

    torch.set_num_threads(1)
    if spec["kind"] == "train":
        result = child_train(spec)
    else:
        result = apply_method(spec)
    result.update({k: spec[k] for k in ("split", "seed", "method")})
    Path(spec["result"]).write_text(json.dumps(result))


# --------------------------------------------------------------------------------------- apply
# Fine-tuning arms (`jess-geo adapt --method jess` from the baseline): flags over the adapt defaults.
# split / passes = jess.batchnorm; lambda 0 = the BatchNorm-only control of the same handling.
FINETUNE_ARMS: dict[str, dict[str, Any]] = {
    "jess": {},                                                # as shipped: pixel energies, split BatchNorm, lambda 0.01
    "split-BN": {"energy_weight": 0.0},                        # the same with lambda 0
    "jess-image": {"energy": "image"},                         # per-image energies
    "jess-margin": {"margin": 1.0},                            # hinge max(0, E_t - E_s + 1) instead of the open gap
    "jess-passes": {"jess_batchnorm": "passes"},               # the reference code's three passes
    "passes-BN": {"jess_batchnorm": "passes", "energy_weight": 0.0},
}
CHEAP = ("baseline", "adabn", "histmatch", "histmatch+adabn")  # the method "cheap": no training, one process
# fewshot: the labelled target data and the held-out target data it is scored on (never the same pixels)
FEWSHOT = {
    "camera": "left half of the transformed stop_2_repaired_a labelled, scored on its right half",
    "season": "stop_1_spring_2012 labelled, scored on stop_5_attempt_2_spring_2012",
}


def _half_masks(src: Path, labelled: Path, scored: Path) -> None:
    """Two copies of a mask: the left half labelled (the right half 255 = unlabelled) and the reverse."""
    import numpy as np
    from PIL import Image

    m = np.asarray(Image.open(src))
    left, right = m.copy(), m.copy()
    w = m.shape[1] // 2
    left[:, w:] = 255
    right[:, :w] = 255
    for arr, folder in ((left, labelled), (right, scored)):
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(folder / src.name)


def fewshot_data(split: str, f: dict[str, Path], work: Path) -> tuple[Path, Path, Path, Path]:
    """(labelled images, labelled masks, scored images, scored masks) of the fewshot arm."""
    d = work / f"fewshot_{split}"
    if split == "camera":
        stem = SPLITS["camera"]["target"][0]
        if not (d / "scored_masks").exists():
            _half_masks(f["target"] / "masks" / f"{stem}.png", d / "labelled_masks", d / "scored_masks")
        return f["target"] / "images", d / "labelled_masks", f["target"] / "images", d / "scored_masks"
    lab, held = SPLITS["season"]["target"]
    for name, stem in (("labelled", lab), ("scored", held)):
        for sub in ("images", "masks"):
            (d / f"{name}_{sub}").mkdir(parents=True, exist_ok=True)
            link = d / f"{name}_{sub}" / f"{stem}.png"
            if not link.exists():
                link.symlink_to(DATA / sub / f"{stem}.png")
    return d / "labelled_images", d / "labelled_masks", d / "scored_images", d / "scored_masks"


def predict_applies_alignment() -> bool:
    """Whether this code's predict pipeline applies a model's colour_alignment (C1's reader edit)."""
    import jess_geo.inference.reader as reader

    return "apply_tables" in Path(reader.__file__).read_text()


def aligned_copies(model: Path, images: Path, out: Path) -> Path:
    """The images mapped through the model's colour alignment (uint8 PNGs), for code whose
    predict does not apply it yet: the same tables, applied before reading instead of per tile."""
    import numpy as np
    from PIL import Image

    from jess_geo.adaptation.colour import apply_tables, lookup_tables
    from jess_geo.models.modelfile import read_metadata

    tables = lookup_tables(read_metadata(model).get("colour_alignment"))
    out.mkdir(parents=True, exist_ok=True)
    for p in sorted(images.iterdir()):
        raw = np.asarray(Image.open(p).convert("RGB")).transpose(2, 0, 1)
        a = apply_tables(raw, tables)
        Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8).transpose(1, 2, 0)).save(out / f"{p.stem}.png")
    return out


def _scored(model: Any, images: Path, masks: Path) -> dict[str, Any]:
    from jess_geo.models.modelfile import read_metadata
    from jess_geo.training.evaluate import evaluate_model

    extra: dict[str, Any] = {}
    if read_metadata(model).get("colour_alignment") and not predict_applies_alignment():
        images = aligned_copies(Path(model), images, Path(model).with_suffix(".aligned"))
        extra["alignment_applied"] = "to copies of the images (this code's predict does not apply it)"
    r = evaluate_model(model, images, masks, device="cpu")
    return {**extra, "target_accuracy": r["accuracy"], "target_miou": r["miou"], "target_images": r["images"]}


def apply_cheap(spec: dict[str, Any], f: dict[str, Path], out: Path) -> dict[str, Any]:
    """baseline, adabn, histmatch, histmatch+adabn of one baseline, one process (no training)."""
    from jess_geo.adaptation.adabn import adapt_adabn
    from jess_geo.adaptation.histmatch import adapt_histmatch
    base, seed, tgt = Path(spec["baseline"]), spec["seed"], f["target"] / "images"
    models = {"baseline": base}
    arms: dict[str, Any] = {}
    t = time.perf_counter()
    adapt_adabn(base, tgt, out / "adabn.pt", seed=seed, overwrite=True)
    arms["adabn"] = {"adapt_s": time.perf_counter() - t}
    t = time.perf_counter()
    adapt_histmatch(base, f["train"] / "images", tgt, out / "histmatch.pt", overwrite=True)
    arms["histmatch"] = {"adapt_s": time.perf_counter() - t}
    t = time.perf_counter()
    adapt_adabn(out / "histmatch.pt", tgt, out / "histmatch+adabn.pt", seed=seed, overwrite=True)  # statistics of the aligned target
    arms["histmatch+adabn"] = {"adapt_s": time.perf_counter() - t + arms["histmatch"]["adapt_s"]}
    models.update({a: out / f"{a}.pt" for a in CHEAP[1:]})
    for arm, path in models.items():
        arms.setdefault(arm, {}).update(score(path, f) if arm == "baseline" else _scored(path, f["target"] / "images", f["target"] / "masks"))
    return {"arms": arms}


def apply_tent(spec: dict[str, Any], f: dict[str, Path], out: Path) -> dict[str, Any]:
    """tent (C1's defaults: 20 steps, lr 1e-3, BatchNorm affine, running statistics of the target)."""
    from jess_geo.adaptation.tent import adapt_tent

    t = time.perf_counter()
    adapt_tent(spec["baseline"], f["target"] / "images", out / "tent.pt", seed=spec["seed"], overwrite=True)
    arm = {"adapt_s": time.perf_counter() - t, **_scored(out / "tent.pt", f["target"] / "images", f["target"] / "masks")}
    return {"arms": {"tent": arm}}


# Chains: tent (its defaults) from another arm's model, in the same out folder (that arm must have run).
CHAINS = {"split-BN+tent": "split-BN/model.pt", "histmatch+tent": "histmatch.pt"}


def apply_chain(spec: dict[str, Any], f: dict[str, Path], out: Path) -> dict[str, Any]:
    """tent on top of the λ = 0 fine-tuning (split BatchNorm) and on top of histmatch (aligned target crops)."""
    from jess_geo.adaptation.tent import adapt_tent

    arms = {}
    for name, source in CHAINS.items():
        if not (out / source).exists():
            print(f"{name}: no {out / source} (run that arm first): skipped", flush=True)
            continue
        t = time.perf_counter()
        adapt_tent(out / source, f["target"] / "images", out / f"{name}.pt", seed=spec["seed"], overwrite=True)
        arms[name] = {"adapt_s": time.perf_counter() - t, "from": source,
                      **_scored(out / f"{name}.pt", f["target"] / "images", f["target"] / "masks")}
    return {"arms": arms}


def apply_finetune(spec: dict[str, Any], f: dict[str, Path], out: Path) -> dict[str, Any]:
    """One fine-tuning arm: run_adaptation from the baseline (as `jess-geo adapt --method jess`)."""
    from jess_geo.training.adapt import run_adaptation

    flags = {"images": str(f["train"] / "images"), "masks": str(f["train"] / "masks"),
             "val_images": str(f["val"] / "images"), "val_masks": str(f["val"] / "masks"),
             "target_images": str(f["target"] / "images"), "output_dir": str(out / spec["method"]),
             "epochs": spec["epochs"], "accelerator": "cpu", **FINETUNE_ARMS[spec["method"]]}
    t = time.perf_counter()
    res = run_adaptation(spec["baseline"], None, flags, overwrite=True, progress_bar=False)
    arm = {"adapt_s": time.perf_counter() - t, "best_epoch": res.get("best_epoch"), "flags": FINETUNE_ARMS[spec["method"]],
           "energy_after": res.get("adapted", {}).get("after"), "energy_before": res.get("adapted", {}).get("before")}
    arm.update(_scored(res["model"], f["target"] / "images", f["target"] / "masks"))
    return {"arms": {spec["method"]: arm}}


# Few-shot arms (method name -> adapt_fewshot settings; "source": replay the split's labelled
# training data, half of each batch). Each is scored, with the baseline, on the held-out part.
FEWSHOT_ARMS: dict[str, dict[str, Any]] = {
    "fewshot": {},
    "fewshot+replay": {"source": True},
    "fewshot+replay-120": {"source": True, "steps": 120},
    "fewshot+replay-120-lr1e-3": {"source": True, "steps": 120, "lr": 1e-3},
    "histmatch+fewshot+replay": {"source": True, "from": "histmatch.pt"},  # target crops colour-aligned (run cheap first)
    "histmatch+fewshot+replay-120-lr1e-3": {"source": True, "steps": 120, "lr": 1e-3, "from": "histmatch.pt"},
}


def apply_fewshot(spec: dict[str, Any], f: dict[str, Path], out: Path) -> dict[str, Any]:
    """One few-shot arm on the labelled part of the target; it and the baseline scored on the held-out part."""
    from jess_geo.adaptation.fewshot import adapt_fewshot

    name = spec["method"]
    kw = dict(FEWSHOT_ARMS[name])
    if kw.pop("source", False):
        kw.update(images=f["train"] / "images", masks=f["train"] / "masks")
    start = out / kw.pop("from") if "from" in kw else Path(spec["baseline"])
    li, lm, si, sm = fewshot_data(spec["split"], f, WORK)
    t = time.perf_counter()
    adapt_fewshot(start, li, lm, out / f"{name}.pt", seed=spec["seed"], overwrite=True, **kw)
    # BatchNorm statistics: adapt_fewshot re-estimates them on ``li`` (the labelled target images)
    arm = {"adapt_s": time.perf_counter() - t, "data": FEWSHOT[spec["split"]], **_scored(out / f"{name}.pt", si, sm)}
    base = _scored(spec["baseline"], si, sm)
    arm["base_accuracy"], arm["base_miou"] = base["target_accuracy"], base["target_miou"]
    return {"arms": {name: arm}}


# Camera-simulation arms (method name -> adapt_camsim settings): the split's labelled training data
# rendered with the target's colours, blur and noise; scored on the whole target like the cheap arms.
# Session 9's arms (120 steps, the last weights) keep their settings; `adapt --method camsim`'s
# defaults since session 10 are the arm camsim-swa-240.
SESSION9 = {"steps": 120, "average": False}
CAMSIM_ARMS: dict[str, dict[str, Any]] = {
    "camsim": SESSION9,
    "camsim-lr2e-4": {**SESSION9, "lr": 2e-4},
    "camsim-240": {**SESSION9, "steps": 240},
    "histmatch+camsim": {**SESSION9, "from": "histmatch.pt"},  # target read through histmatch's table (run cheap first)
    "histmatch+camsim-240": {**SESSION9, "steps": 240, "from": "histmatch.pt"},
    "camsim+pseudo-120": {**SESSION9, "pseudo_steps": 120},  # then 120 self-training steps on the target (session 10)
    "histmatch+camsim+pseudo-120": {**SESSION9, "pseudo_steps": 120, "from": "histmatch.pt"},
    "camsim-cos": {**SESSION9, "schedule": "cosine"},  # the rate falling to 0 over the steps (session 10)
    "camsim-cos-240": {**SESSION9, "schedule": "cosine", "steps": 240},
    "histmatch+camsim-cos-240": {**SESSION9, "schedule": "cosine", "steps": 240, "from": "histmatch.pt"},
    "camsim-swa": {"steps": 120, "average": True},  # weights averaged over the second half of the steps (session 10)
    "camsim-swa-240": {"steps": 240, "average": True},  # = adapt --method camsim's defaults
    "histmatch+camsim-swa-240": {"steps": 240, "average": True, "from": "histmatch.pt"},
    "camsim-swa-rerun": {"steps": 120, "average": True, "seed_offset": 100},  # other crops and noise: the run-to-run spread
}


def apply_camsim(spec: dict[str, Any], f: dict[str, Path], out: Path) -> dict[str, Any]:
    """One camsim arm from the baseline (or from another arm's model), scored on the target photo."""
    from jess_geo.adaptation.camsim import adapt_camsim

    name = spec["method"]
    kw = dict(CAMSIM_ARMS[name])
    start = out / kw.pop("from") if "from" in kw else Path(spec["baseline"])
    seed = spec["seed"] + kw.pop("seed_offset", 0)
    t = time.perf_counter()
    res = adapt_camsim(start, f["train"] / "images", f["train"] / "masks", f["target"] / "images", out / f"{name}.pt",
                       seed=seed, overwrite=True, **kw)
    arm = {"adapt_s": time.perf_counter() - t, "camera": res["settings"]["camera"],
           **_scored(out / f"{name}.pt", f["target"] / "images", f["target"] / "masks")}
    return {"arms": {name: arm}}


def apply_method(spec: dict[str, Any]) -> dict[str, Any]:
    f = {k: Path(v) for k, v in spec["folders"].items()}
    out = Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)
    if spec["method"] == "cheap":
        return apply_cheap(spec, f, out)
    if spec["method"] in FEWSHOT_ARMS:
        return apply_fewshot(spec, f, out)
    if spec["method"] in CAMSIM_ARMS:
        return apply_camsim(spec, f, out)
    if spec["method"] == "tent":
        return apply_tent(spec, f, out)
    if spec["method"] == "chain":
        return apply_chain(spec, f, out)
    return apply_finetune(spec, f, out)


def cmd_apply(args: argparse.Namespace) -> int:
    f = folders()
    jobs = []
    plan = [tuple(j.split(":")) for j in args.jobs] if args.jobs else [
        (split, method, str(seed)) for seed in args.seeds for method in args.methods for split in args.splits]
    for split, method, seed_s in plan:
        seed = int(seed_s)
        if not baseline_path(split, seed).exists():
            print(f"no baseline for {split} seed {seed}: skipped", flush=True)
            continue
        res = WORK / "results" / f"{split}_s{seed}_{method}.json"
        if res.exists() and not args.again:
            continue
        jobs.append({"kind": "apply", "split": split, "seed": seed, "method": method, "epochs": args.finetune_epochs,
                     "baseline": str(baseline_path(split, seed)), "folders": {k: str(v) for k, v in f[split].items()},
                     "out": str(WORK / "models" / split / f"seed{seed}"), "result": str(res)})
    run_jobs(jobs, args.parallel)
    return 0


# -------------------------------------------------------------------------------------- report
def rows(work: Path = WORK) -> list[dict[str, Any]]:
    """One row per (split, arm, seed) from the apply results, with the paired baseline figures."""
    out: list[dict[str, Any]] = []
    results = [json.loads(p.read_text()) for p in sorted((work / "results").glob("*_s*_*.json"))
               if not p.name.startswith("train_") and not p.name.endswith(".spec.json")]
    base = {(r["split"], r["seed"]): r["arms"]["baseline"] for r in results if "baseline" in r.get("arms", {})}
    for r in results:
        for arm, a in r["arms"].items():
            b = base.get((r["split"], r["seed"]))
            row = {"split": r["split"], "seed": r["seed"], "arm": arm, **{k: v for k, v in a.items() if not k.endswith("_images")}}
            if "base_accuracy" in a:  # fewshot: paired on its held-out part
                row["delta_accuracy"], row["delta_miou"] = a["target_accuracy"] - a["base_accuracy"], a["target_miou"] - a["base_miou"]
            elif b is not None:
                row["delta_accuracy"], row["delta_miou"] = a["target_accuracy"] - b["target_accuracy"], a["target_miou"] - b["target_miou"]
            out.append(row)
    return out


def fmt_pp(values: list[float]) -> str:
    """Mean ± s.e. in percent (points); one value: the value and '(1 seed)'."""
    values = [100 * v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.1f} (1 seed)"
    m, se = mean_se(values)
    return f"{m:.1f} ± {se:.1f}"


ORDER = ["baseline", "adabn", "tent", "histmatch", "histmatch+adabn", *CAMSIM_ARMS, *FEWSHOT_ARMS, *FINETUNE_ARMS, *CHAINS]


def report_text(rs: list[dict[str, Any]]) -> str:
    lines = ["| split | method | seeds | target acc % | target mIoU % | Δ acc (points) | Δ mIoU (points) | seeds better (acc) | adapt time, s (each) |",
             "|---|---|---|---|---|---|---|---|---|"]
    best: dict[str, tuple[float, str]] = {}
    for split in SPLITS:
        for arm in ORDER:
            g = sorted((r for r in rs if r["split"] == split and r["arm"] == arm), key=lambda r: r["seed"])
            if not g:
                continue
            d = [r["delta_accuracy"] for r in g if "delta_accuracy" in r and arm != "baseline"]
            better = f"{sum(v > 0 for v in d)}/{len(d)}" if d else "-"
            times = ", ".join(f"{r['adapt_s']:.0f}" for r in g if r.get("adapt_s") is not None) or "-"
            lines.append(f"| {split} | {arm} | {','.join(str(r['seed']) for r in g)} | {fmt_pp([r['target_accuracy'] for r in g])} "
                         f"| {fmt_pp([r['target_miou'] for r in g])} | {fmt_pp(d) if d else '-'} "
                         f"| {fmt_pp([r['delta_miou'] for r in g if 'delta_miou' in r]) if d else '-'} | {better} | {times} |")
            if d and statistics.fmean(d) > best.get(split, (-1.0, ""))[0]:
                best[split] = (statistics.fmean(d), arm)
    clean = [r for r in rs if r["arm"] == "baseline" and r.get("clean_accuracy") is not None]
    if clean:
        lines += ["", "Camera-shift cost for the baseline (the held-out photo untransformed vs transformed): accuracy "
                  f"{fmt_pp([r['clean_accuracy'] for r in clean])} % -> {fmt_pp([r['target_accuracy'] for r in clean])} %, mIoU "
                  f"{fmt_pp([r['clean_miou'] for r in clean])} % -> {fmt_pp([r['target_miou'] for r in clean])} %."]
    question = ["", "The energy question: the same BatchNorm handling with lambda > 0 minus lambda 0 (paired by seed), points:", "",
                "| split | energy form | BatchNorm | Δ acc | Δ mIoU | seeds better |", "|---|---|---|---|---|---|"]
    pairs: list[str] = []
    for split in SPLITS:
        for arm, control, form, bn in (("jess", "split-BN", "pixel, open gap", "split"), ("jess-image", "split-BN", "image, open gap", "split"),
                                       ("jess-margin", "split-BN", "pixel, margin 1", "split"), ("jess-passes", "passes-BN", "pixel, open gap", "passes")):
            a = {r["seed"]: r for r in rs if r["split"] == split and r["arm"] == arm}
            c = {r["seed"]: r for r in rs if r["split"] == split and r["arm"] == control}
            seeds = sorted(set(a) & set(c))
            if not seeds:
                continue
            da = [a[k]["target_accuracy"] - c[k]["target_accuracy"] for k in seeds]
            dm = [a[k]["target_miou"] - c[k]["target_miou"] for k in seeds]
            pairs.append(f"| {split} | {form} ({arm} - {control}) | {bn} | {fmt_pp(da)} | {fmt_pp(dm)} | {sum(v > 0 for v in da)}/{len(da)} |")
    if pairs:  # only where both arms of a pair ran
        lines += question + pairs
    energy = [r for r in rs if r.get("energy_after")]
    if energy:
        lines += ["", "Energies of the fine-tuning arms (run's own validation windows; before = the baseline, after = the kept model):", "",
                  "| split | method | seed | E source before -> after | E target before -> after | gap before -> after |", "|---|---|---|---|---|---|"]
        for r in sorted(energy, key=lambda r: (r["split"], ORDER.index(r["arm"]), r["seed"])):
            b, a = r.get("energy_before") or {}, r["energy_after"]
            cell = lambda k: f"{b.get(k, float('nan')):.2f} -> {a.get(k, float('nan')):.2f}"  # noqa: E731
            lines.append(f"| {r['split']} | {r['arm']} | {r['seed']} | {cell('source_energy')} | {cell('target_energy')} | {cell('energy_gap')} |")
    lines.append("")
    for split, need in (("camera", 8.0), ("season", 2.0)):
        if split in best:
            v, arm = best[split]
            lines.append(f"Target {split} >= +{need:.0f} points accuracy: best method {arm} {100 * v:+.1f} -> "
                         f"{'met' if 100 * v >= need else 'NOT met'}.")
    return "\n".join(lines)


def cmd_report(args: argparse.Namespace) -> int:
    rs = rows()
    trained = [json.loads(p.read_text()) for p in sorted((WORK / "results").glob("train_*.json")) if not p.name.endswith(".spec.json")]
    head = [f"Baselines: photo_scale 0.5, crop 256, batch 8, AdamW lr 1e-3, {args.epochs} epochs x "
            f"{args.samples_per_epoch // 8} steps = {args.epochs * args.samples_per_epoch // 8} steps, ImageNet EfficientNet-Lite0 "
            "U-Net, 1 torch thread, nice 10, at most 2 processes; fine-tuning arms: `adapt --method jess` defaults (lr 2e-4, no "
            f"warm-up) for {args.finetune_epochs} epochs x 8 steps; tent {20} steps, adabn 64 crops, fewshot 40 steps (C1's defaults).",
            "Baseline runs: " + "; ".join(f"{t['split']} seed {t['seed']}: {t['train_s'] / 60:.1f} min, val mIoU "
                                          f"{100 * (t.get('val_miou') or 0):.1f} %" for t in trained), "",
            "Fewshot data: " + "; ".join(f"{k}: {v}" for k, v in FEWSHOT.items()) + ".", ""]
    text = "\n".join(head) + report_text(rs)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    doc = (__doc__ or "").split("\n\n    nice")[0]
    (RESULTS / f"{args.name}.md").write_text("# Adaptation toolbox: every method on the camera and season shifts\n\n" + doc + "\n\n" + text + "\n")
    keys = ["split", "arm", "seed", "target_accuracy", "target_miou", "delta_accuracy", "delta_miou", "clean_accuracy",
            "clean_miou", "base_accuracy", "base_miou", "adapt_s", "best_epoch", "data", "alignment_applied"]
    with open(RESULTS / f"{args.name}.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        for r in sorted(rs, key=lambda r: (r["split"], ORDER.index(r["arm"]) if r["arm"] in ORDER else 99, r["seed"])):
            w.writerow({k: r.get(k) for k in keys})
    print(f"written: {RESULTS / args.name}.md, {args.name}.csv")
    return 0


# -------------------------------------------------------------------------------------- driver
def run_jobs(jobs: list[dict[str, Any]], parallel: int) -> list[dict[str, Any]]:
    """Run each job in its own (niced) process, ``parallel`` at a time; results of those that succeed."""
    results: list[dict[str, Any]] = []
    print(f"{len(jobs)} runs, {parallel} at a time", flush=True)
    finished = run_queue(jobs, lambda spec, sp: niced(sys.executable, __file__, "--child", str(sp)),
                         lambda spec: Path(spec["result"]).with_suffix(".spec.json"),
                         lambda spec: Path(spec["result"]).with_suffix(".log"), parallel)
    for spec, code, seconds in finished:
        tag = f"{spec['split']} {spec['method']} seed {spec['seed']}"
        if code != 0:
            print(f"  {tag}: FAILED (see {Path(spec['result']).with_suffix('.log')})", flush=True)
            continue
        r = json.loads(Path(spec["result"]).read_text())
        r["wall_s"] = seconds
        Path(spec["result"]).write_text(json.dumps(r))
        results.append(r)
        acc = r.get("target_accuracy")
        print(f"  {tag}: " + (f"target acc {100 * acc:.1f} %, mIoU {100 * r['target_miou']:.1f} %, " if acc is not None else "")
              + f"run {r['wall_s'] / 60:.1f} min", flush=True)
    return results


def cmd_train(args: argparse.Namespace) -> int:
    f = folders()
    jobs = []
    for seed in args.seeds:
        for split in args.splits:
            if baseline_path(split, seed).exists() and not args.again:
                continue
            out = WORK / "runs" / f"train_{split}_s{seed}"
            jobs.append({"kind": "train", "split": split, "seed": seed, "method": "baseline",
                         "config": base_config(f[split], out, seed, args), "model": str(baseline_path(split, seed)),
                         "result": str(WORK / "results" / f"train_{split}_s{seed}.json")})
    run_jobs(jobs, args.parallel)
    have = [str(baseline_path(s, k)) for s in SPLITS for k in (0, 1, 2) if baseline_path(s, k).exists()]
    note = "all six" if len(have) == 6 else f"ONLY {len(have)} of 6 (the machine's load left no time for the others)"
    (MODELS / "READY").write_text(f"baseline.pt files, {note} (benchmarks/adapt_toolbox.py train):\n" + "\n".join(have) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("step", nargs="?", choices=["train", "apply", "report"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--splits", nargs="+", default=list(SPLITS), choices=list(SPLITS))
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--samples-per-epoch", type=int, default=64)
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--again", action="store_true", help="train baselines that exist already")
    ap.add_argument("--recipe", type=Path, default=None, help="train: a shipped config (e.g. configs/cpu_biocrust.yaml) instead of the small budget")
    ap.add_argument("--methods", nargs="+", default=["cheap", "jess", "split-BN", "fewshot"],
                    choices=["cheap", "tent", "chain", *FEWSHOT_ARMS, *FINETUNE_ARMS])
    ap.add_argument("--jobs", nargs="+", help="apply: split:method:seed in this order (instead of the product)")
    ap.add_argument("--name", default="adapt_toolbox", help="report: write benchmarks/results/NAME.md and NAME.csv")
    ap.add_argument("--finetune-epochs", type=int, default=3, help="epochs of the fine-tuning arms (x 8 steps)")
    args = ap.parse_args(argv)
    if args.child:
        child(Path(args.child))
        return 0
    if args.step == "train":
        return cmd_train(args)
    if args.step == "apply":
        return cmd_apply(args)
    return cmd_report(args)


if __name__ == "__main__":
    sys.exit(main())
