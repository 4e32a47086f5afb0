"""Test-time augmentation (`predict --tta none|flips|d4`): its cost and its gain, measured.

Gain: OA, mIoU and per-class IoU of ``evaluate_model(..., tta=mode)`` (the predict pipeline at
native resolution, what ``jess-geo evaluate --tta`` prints) on the held-out source-camera photos
of the camera split (``SPLITS["camera"]`` of benchmarks/domain_shift.py, imported): the split's
validation photo stop_5_attempt_2_spring_2012 (never trained on; it picks the checkpoint) and
its held-apart photo stop_2_repaired_a untransformed (never seen at all), scored pooled and per
photo. Models: 3 seeds of today's default recipe (``ce``) at the shared small budget
(photo_scale 0.5, crop 256, batch 8, 8 epochs x 8 steps = 64 steps, Lite0 ImageNet, 1 torch
thread): helper A's ``/work/bench_models/rare/ce/seed<k>/model.pt`` where its run is complete
(``work/ce_s<k>.json`` written), otherwise trained here with the same settings into
``/work/bench_models/tta/seed<k>/``. Paired differences (flips - none, d4 - none) per seed.

Cost: wall seconds per scene. Every (model, mode) runs in its own process (``nice -n 10``, one
torch thread, CPU), the modes in rotated order per seed and per round; a process opens the model
once. Photos (the seeds' models, ``evaluate_model`` per photo): with ``--repeats 0`` (default)
each photo is run and timed once, the first one carrying the warm-up; with ``--repeats N`` a
warm-up pass and then the median of N. The sample scene (demo model, ``predict_raster``): a
warm-up run, then the median of 3. The table gives the median over processes and the ratio to
``none``.

    nice -n 10 .venv/bin/python benchmarks/tta.py train [--seeds 1 2]     # the missing models
    nice -n 10 .venv/bin/python benchmarks/tta.py run [--rounds 1 --repeats 0 --parallel 2] [--write-md]
    nice -n 10 .venv/bin/python benchmarks/tta.py cost [--rounds 2] [--write-md]   # more demo-cost rounds
    .venv/bin/python benchmarks/tta.py report [--write-md]                         # tables only
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from child_queue import niced, run_queue  # noqa: E402
from domain_shift import DATA, SPLITS, _link, mean_se  # noqa: E402  (the shared split definitions)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
A_MODELS = Path("/work/bench_models/rare")
OWN = Path("/work/bench_models/tta")
DEMO = ROOT / "jess_geo" / "assets" / "demo_model.pt"
SCENE = ROOT / "sample_data" / "scene.tif"
MODES = ("none", "flips", "d4")
HELDOUT = SPLITS["camera"]["val"] + SPLITS["camera"]["target"]


def folders(work: Path) -> dict[str, Path]:
    """train / val folders of the camera split and one folder per held-out photo (symlinks)."""
    parts = SPLITS["camera"]
    out = {"train": work / "train", "val": work / "val"}
    for stem in HELDOUT:
        out[stem] = work / "heldout" / stem
    for name, stems in (("train", parts["train"]), ("val", parts["val"]), *((s, [s]) for s in HELDOUT)):
        if not out[name].exists():
            _link(stems, out[name])
    return out


def train_config(seed: int, f: dict[str, Path], out: Path) -> dict[str, Any]:
    """Helper A's ``ce`` arm (benchmarks/rare_classes.py) for one seed: the shared small budget."""
    return {
        "images": str(f["train"] / "images"), "masks": str(f["train"] / "masks"),
        "val_images": str(f["val"] / "images"), "val_masks": str(f["val"] / "masks"),
        "classes": str(DATA / "classes.json"), "output_dir": str(out), "seed": seed,
        "photo_scale": 0.5, "crop_size": 256, "batch_size": 8, "val_crop": 512,
        "epochs": 8, "samples_per_epoch": 64, "warmup_epochs": 1, "accelerator": "cpu",
    }


def model_for(seed: int) -> Path | None:
    """Helper A's complete ce model of ``seed``, else this benchmark's own, else None."""
    if (A_MODELS / "work" / f"ce_s{seed}.json").is_file() and (A_MODELS / "ce" / f"seed{seed}" / "model.pt").is_file():
        return A_MODELS / "ce" / f"seed{seed}" / "model.pt"
    own = OWN / f"seed{seed}" / "model.pt"
    return own if (OWN / f"seed{seed}.done").is_file() and own.is_file() else None


# ------------------------------------------------------------------------------ child processes
def child_train(spec: dict[str, Any]) -> None:
    """Train one seed (one torch thread) and mark it done."""
    import torch

    torch.set_num_threads(1)
    from jess_geo.training.config import config_from_mapping
    from jess_geo.training.train import run_training

    t0 = time.process_time()
    run_training(config_from_mapping(spec["config"]), progress_bar=False)
    Path(spec["done"]).write_text(json.dumps({"train_cpu_s": time.process_time() - t0}))


def child_eval(spec: dict[str, Any]) -> None:
    """One (model, mode): per held-out photo the confusion matrix and the median wall seconds."""
    import torch

    torch.set_num_threads(1)
    from jess_geo.models.modelfile import load_model_file
    from jess_geo.training.evaluate import evaluate_model

    loaded = load_model_file(spec["model"])
    out: dict[str, Any] = {}
    for stem, folder in spec["photos"].items():
        times, m = [], None
        for i in range(1 + spec["repeats"]):
            t0 = time.perf_counter()
            m = evaluate_model(loaded, Path(folder) / "images", Path(folder) / "masks", device="cpu", tta=spec["mode"])
            if i > 0 or spec["repeats"] == 0:
                times.append(time.perf_counter() - t0)
        out[stem] = {"seconds": statistics.median(times), "confusion": m["confusion_matrix"], "names": m["class_names"]}
    Path(spec["result"]).write_text(json.dumps(out))


def child_cost(spec: dict[str, Any]) -> None:
    """The demo model on the sample scene: median wall seconds of ``predict_raster`` (model opened once)."""
    import tempfile

    import torch

    torch.set_num_threads(1)
    from jess_geo.inference.predict import predict_raster
    from jess_geo.models.modelfile import load_model_file

    loaded = load_model_file(spec["model"])
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(1 + spec["repeats"]):
            t0 = time.perf_counter()
            predict_raster(spec["scene"], loaded, Path(tmp) / f"r{i}.tif", cover=False, device="cpu", tta=spec["mode"])
            if i > 0:
                times.append(time.perf_counter() - t0)
    Path(spec["result"]).write_text(json.dumps({"scene": {"seconds": statistics.median(times)}}))


CHILDREN = {"train": child_train, "eval": child_eval, "cost": child_cost}


def run_children(specs: list[dict[str, Any]], parallel: int, work: Path) -> None:
    """Run each spec in its own ``nice -n 10`` process, ``parallel`` at a time, in the given order."""
    finished = run_queue(specs, lambda spec, sp: niced(sys.executable, __file__, "--child", spec["kind"], str(sp)),
                         lambda spec: work / f"{spec['name']}.spec.json", lambda spec: work / f"{spec['name']}.log",
                         parallel, poll_s=1.0)
    for spec, code, _seconds in finished:
        state = "done" if code == 0 else f"FAILED (see {work / spec['name']}.log)"
        print(f"  {spec['name']}: {state}", flush=True)


# ------------------------------------------------------------------------------ commands
def train(args: argparse.Namespace) -> None:
    """Train the seeds that have no complete model yet (helper A's or our own)."""
    OWN.mkdir(parents=True, exist_ok=True)
    f = folders(OWN / "work")
    specs = []
    for seed in args.seeds:
        if model_for(seed) is not None:
            print(f"  seed {seed}: {model_for(seed)} (complete)")
            continue
        specs.append({"kind": "train", "name": f"train_s{seed}", "config": train_config(seed, f, OWN / f"seed{seed}"),
                      "done": str(OWN / f"seed{seed}.done")})
    run_children(specs, args.parallel, OWN / "work")


def rotated(seq: tuple[str, ...], k: int) -> list[str]:
    """``seq`` started at its ``k``-th element: the modes alternate between rounds."""
    return [seq[(i + k) % len(seq)] for i in range(len(seq))]


def run(args: argparse.Namespace) -> None:
    """Gain and cost of every mode: one process per (model, mode, round), modes alternating."""
    work = OWN / "work" / "runs"
    work.mkdir(parents=True, exist_ok=True)
    f = folders(OWN / "work")
    photos = {stem: str(f[stem]) for stem in HELDOUT}
    models = {seed: model_for(seed) for seed in args.seeds}
    missing = [s for s, m in models.items() if m is None]
    if missing:
        raise SystemExit(f"no complete model for seed(s) {missing}; run `benchmarks/tta.py train` first")
    specs = []
    for r in range(args.rounds):
        for seed, model in models.items():
            for mode in rotated(MODES, r + seed):
                specs.append({"kind": "eval", "name": f"eval_s{seed}_{mode}_r{r}", "model": str(model), "mode": mode,
                              "seed": seed, "round": r, "photos": photos, "repeats": args.repeats,
                              "result": str(work / f"eval_s{seed}_{mode}_r{r}.json")})
        for mode in rotated(MODES, r):
            specs.append({"kind": "cost", "name": f"cost_{mode}_r{r}", "model": str(DEMO), "mode": mode, "round": r,
                          "scene": str(SCENE), "repeats": 3, "result": str(work / f"cost_{mode}_r{r}.json")})
    (work / "plan.json").write_text(json.dumps({"models": {str(k): str(v) for k, v in models.items()}, "specs": specs,
                                                "commands": [" ".join(sys.argv[1:])]}))
    run_children(specs, args.parallel, work)


def more_cost(args: argparse.Namespace) -> None:
    """``--rounds`` more rounds of the demo-model cost (appended to the last run's plan)."""
    work = OWN / "work" / "runs"
    plan = json.loads((work / "plan.json").read_text())
    start = 1 + max((s["round"] for s in plan["specs"] if s["kind"] == "cost"), default=-1)
    specs = [{"kind": "cost", "name": f"cost_{mode}_r{r}", "model": str(DEMO), "mode": mode, "round": r,
              "scene": str(SCENE), "repeats": 3, "result": str(work / f"cost_{mode}_r{r}.json")}
             for r in range(start, start + args.rounds) for mode in rotated(MODES, r)]
    plan["specs"] += specs
    plan["commands"] = plan.get("commands", ["run --rounds 1 --write-md"]) + [" ".join(sys.argv[1:])]
    (work / "plan.json").write_text(json.dumps(plan))
    run_children(specs, args.parallel, work)


def _metrics(confusions: list[list[list[int]]], names: list[str]) -> dict[str, Any]:
    import torch

    from jess_geo.training.metrics import metrics_from_confusion

    return metrics_from_confusion(sum(torch.tensor(c, dtype=torch.long) for c in confusions), names)


def collect() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The plan and one record per finished child (its spec and result)."""
    work = OWN / "work" / "runs"
    plan = json.loads((work / "plan.json").read_text())
    done = []
    for spec in plan["specs"]:
        path = Path(spec["result"])
        if path.is_file():
            done.append({**spec, "out": json.loads(path.read_text())})
    return plan, done


def _pm(values: list[float], scale: float = 100.0, digits: int = 1, signed: bool = False) -> str:
    m, se = mean_se([v * scale for v in values])
    return f"{m:{'+' if signed else ''}.{digits}f}" + ("" if se != se else f" ± {se:.{digits}f}")


def gain_tables(evals: list[dict[str, Any]]) -> list[str]:
    """Per seed OA / mIoU per mode and paired differences; per-class IoU; per photo."""
    first = {(e["seed"], e["mode"]): e for e in sorted(evals, key=lambda e: e["round"], reverse=True)}
    seeds = sorted({s for s, _ in first})
    names = next(iter(first.values()))["out"][HELDOUT[0]]["names"]
    m = {k: _metrics([e["out"][p]["confusion"] for p in HELDOUT], names) for k, e in first.items()}
    lines = ["Gain: held-out photos pooled (" + ", ".join(HELDOUT) + "), OA / mIoU in %",
             "", "| seed | OA none | OA flips | OA d4 | mIoU none | mIoU flips | mIoU d4 | ΔOA flips | ΔOA d4 | ΔmIoU flips | ΔmIoU d4 |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    diffs: dict[str, list[float]] = {k: [] for k in ("oa_flips", "oa_d4", "miou_flips", "miou_d4")}
    for s in seeds:
        row = [m[(s, mode)] for mode in MODES]
        for key, idx in (("oa_flips", 1), ("oa_d4", 2)):
            diffs[key].append(row[idx]["accuracy"] - row[0]["accuracy"])
        for key, idx in (("miou_flips", 1), ("miou_d4", 2)):
            diffs[key].append(row[idx]["miou"] - row[0]["miou"])
        cells = [f"{100 * r['accuracy']:.2f}" for r in row] + [f"{100 * r['miou']:.2f}" for r in row]
        cells += [f"{100 * diffs[k][-1]:+.2f}" for k in ("oa_flips", "oa_d4", "miou_flips", "miou_d4")]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    mean_cells = [_pm([m[(s, mode)]["accuracy"] for s in seeds], digits=2) for mode in MODES]
    mean_cells += [_pm([m[(s, mode)]["miou"] for s in seeds], digits=2) for mode in MODES]
    mean_cells += [_pm(diffs[k], digits=2, signed=True) for k in ("oa_flips", "oa_d4", "miou_flips", "miou_d4")]
    lines += [f"| mean ± SE ({len(seeds)} seeds) | " + " | ".join(mean_cells) + " |", ""]
    lines += ["Per-class IoU in % (pooled photos, mean ± SE over seeds; '-' = absent from the truth)", "",
              "| class | none | flips | d4 | Δ flips | Δ d4 |", "|---|---|---|---|---|---|"]
    for name in names:
        vals = {mode: [m[(s, mode)]["per_class"][name]["iou"] for s in seeds] for mode in MODES}
        if any(v is None for v in vals["none"]):
            lines.append(f"| {name} | - | - | - | - | - |")
            continue
        d = [_pm([a - b for a, b in zip(vals[mode], vals["none"])], signed=True) for mode in ("flips", "d4")]
        lines.append(f"| {name} | " + " | ".join(_pm(vals[mode]) for mode in MODES) + f" | {d[0]} | {d[1]} |")
    lines += ["", "Per photo, OA / mIoU in % (mean ± SE over seeds)", "", "| photo | none | flips | d4 |", "|---|---|---|---|"]
    for p in HELDOUT:
        per = {mode: [_metrics([first[(s, mode)]["out"][p]["confusion"]], names) for s in seeds] for mode in MODES}
        lines.append(f"| {p} | " + " | ".join(
            f"{_pm([x['accuracy'] for x in per[mode]])} / {_pm([x['miou'] for x in per[mode]])}" for mode in MODES) + " |")
    return lines + [""]


def cost_table(records: list[dict[str, Any]]) -> list[str]:
    """Median wall seconds per scene and mode over processes, and the ratio to none."""
    rows: dict[tuple[str, str], list[float]] = {}
    for rec in records:
        label = "sample_data/scene.tif (demo model)" if rec["kind"] == "cost" else None
        for scene, v in rec["out"].items():
            key = (label or f"{scene} (seed models)", rec["mode"])
            rows.setdefault(key, []).append(v["seconds"])
    lines = ["Cost: wall seconds per scene, 1 torch thread, CPU, nice 10 (median over processes; ratio to none). "
             "Photos: `evaluate_model` on one photo (predict pipeline into memory + scoring, model already loaded); "
             "scene: `predict_raster` writing the class GeoTIFF (model already loaded).", "",
             "| scene | none s | flips s | d4 s | flips / none | d4 / none | processes |", "|---|---|---|---|---|---|---|"]
    for scene in sorted({k[0] for k in rows}):
        med = {mode: statistics.median(rows[(scene, mode)]) for mode in MODES if (scene, mode) in rows}
        if "none" not in med:
            continue
        n = min(len(rows[(scene, mode)]) for mode in med)
        cells = [f"{med[mode]:.2f}" if mode in med else "-" for mode in MODES]
        ratios = [f"{med[mode] / med['none']:.2f}x" if mode in med else "-" for mode in ("flips", "d4")]
        lines.append(f"| {scene} | " + " | ".join(cells + ratios) + f" | {n} per mode |")
    return lines + [""]


def report(args: argparse.Namespace) -> str:
    plan, done = collect()
    evals = [d for d in done if d["kind"] == "eval"]
    lines = ["# Test-time augmentation: gain and cost", "",
             "Commands: " + "; ".join(f"`nice -n 10 .venv/bin/python benchmarks/tta.py {c}`"
                                      for c in plan.get("commands", ["run --rounds 1 --write-md"])) + ".",
             "Models: " + ", ".join(f"seed {k}: {v}" for k, v in plan["models"].items()), ""]
    if evals:
        lines += gain_tables(evals)
    lines += cost_table(done)
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "tta.json").write_text(json.dumps({"plan": plan, "runs": done}, indent=1))
    if args.write_md:
        (RESULTS / "tta.md").write_text(text + "\n", encoding="utf-8")
    return text


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        CHILDREN[argv[1]](json.loads(Path(argv[2]).read_text()))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["train", "run", "cost", "report"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=0, help="timed passes per photo after a warm-up (0: one pass, timed)")
    ap.add_argument("--write-md", action="store_true", help="also write benchmarks/results/tta.md")
    args = ap.parse_args(argv)
    if args.command == "train":
        train(args)
    elif args.command in ("run", "cost"):
        run(args) if args.command == "run" else more_cost(args)
        report(args)
    else:
        report(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
