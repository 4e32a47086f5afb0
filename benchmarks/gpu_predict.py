"""GPU predict throughput: end-to-end `predict_raster` against the bare batched forward pass (issue 16).

For each network (the shipped demo network run at native resolution, and an untrained network
of the `configs/cpu_biocrust.yaml` architecture), on one generated RGB scene (default 8000 x 8000):

* bare: the network alone, channels-last, under the same autocast (float16 on CUDA) and
  inference mode as the pipeline, over as many tiles of the same shape as predict runs, batched
  as predict batches them; the input batch is already on the device (no reading, no transfers,
  no blending, no writing): the ceiling the pipeline is measured against;
* predict: `jess_geo.inference.predict.predict_raster` (read, normalise, transfer, infer, blend,
  write the class GeoTIFF and the cover table);
* predict+polygons: the same plus the GeoPackage of class polygons (once: it is the slow part).

Throughput is scene megapixels per second. Each variant is warmed up once; bare and predict
are timed ``--repeats`` times in alternating order, medians reported. GPU memory peaks
(allocated / reserved by torch's allocator) are read per variant. Then a brief sweep over
batch size x tile size (demo network, predict and bare once each). Figures are printed and
written as JSON.

    python benchmarks/gpu_predict.py [--device auto] [--size 8000] [--json OUT/predict.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_common import arch_from_config, class_table, device_info, gpu_memory, pick_device, reset_gpu_memory  # noqa: E402
from predict_common import bench_model, make_scene  # noqa: E402

from jess_geo.inference.predict import predict_raster  # noqa: E402
from jess_geo.models.factory import architecture_dict, build_model  # noqa: E402
from jess_geo.models.layout import fast_input, to_fast_layout  # noqa: E402
from jess_geo.models.modelfile import load_model_file, save_model_file  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def config_network(config: Path, workdir: Path, tile: int, overlap: int) -> tuple[Path, str]:
    """An untrained network of ``config``'s architecture, as a model file working at native resolution."""
    encoder, decoder = arch_from_config(config)
    classes = class_table()
    path = workdir / f"{config.stem}_{tile}_{overlap}.pt"
    if not path.exists():
        torch.manual_seed(0)
        arch = architecture_dict(encoder, 3, len(classes), decoder)
        meta = {
            "architecture": arch, "bands": [1, 2, 3],
            "normalization": {"mean": [128.0] * 3, "std": [50.0] * 3},
            "classes": classes, "resolution": {"gsd": None, "photo_scale": 1.0},
            "tile_size": tile, "overlap": overlap,
        }
        save_model_file(path, build_model(arch), meta)
    return path, f"untrained {encoder} U-Net, decoder {'-'.join(map(str, decoder))} ({config.name}), {len(classes)} classes"


def networks(names: list[str], workdir: Path, tile: int, overlap: int) -> dict[str, tuple[Path, str]]:
    """Model files by short name: ``demo`` and ``cpu_biocrust`` (any ``configs/<name>.yaml``)."""
    out = {}
    for name in names:
        if name == "demo":
            out[name] = bench_model("demo", workdir, tile, overlap)
        else:
            out[name] = config_network(REPO / "configs" / f"{name}.yaml", workdir, tile, overlap)
    return out


def bare_forward(model_path: Path, tiles: int, tile: int, batch: int, dev: torch.device) -> Callable[[], float]:
    """A timer of the network alone over ``tiles`` tiles of ``tile`` px in batches of ``batch``."""
    net = to_fast_layout(load_model_file(model_path).model.to(dev).eval(), dev)
    gen = torch.Generator().manual_seed(0)
    full = fast_input(torch.randn(batch, 3, tile, tile, generator=gen).to(dev), dev)
    sizes = [batch] * (tiles // batch) + ([tiles % batch] if tiles % batch else [])
    amp = torch.autocast("cuda", dtype=torch.float16) if dev.type == "cuda" else contextlib.nullcontext()

    def run() -> float:
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.inference_mode(), amp:
            for n in sizes:
                y = net(full[:n])
                if dev.type == "cpu":
                    y.numpy()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    return run


def predict_timer(scene: Path, model: Path, workdir: Path, tile: int, overlap: int, batch: int, device: str,
                  polygons: bool, info: dict[str, Any]) -> Callable[[], float]:
    """A timer of one `predict_raster` call (class GeoTIFF + cover table, polygons if asked)."""
    out = workdir / "out_classes.tif"

    def run() -> float:
        t0 = time.perf_counter()
        info["result"] = predict_raster(scene, model, out, vector=workdir / "out_classes.gpkg" if polygons else None,
                                        tile_size=tile, overlap=overlap, batch_size=batch, device=device, overwrite=True)
        return time.perf_counter() - t0

    return run


def measured(fn: Callable[[], float], dev: torch.device) -> tuple[float, dict[str, float]]:
    """One timed call and the GPU memory peaks it reached."""
    reset_gpu_memory(dev)
    seconds = fn()
    return seconds, gpu_memory(dev)


def compare(name: str, model: Path, scene: Path, size: int, workdir: Path, args: argparse.Namespace,
            dev: torch.device, tile: int, batch: int, repeats: int, polygons: bool, warm: bool = True) -> dict[str, Any]:
    """Bare vs predict (vs predict+polygons) for one network, tile size and batch size.

    ``warm``: the first predict run is a warm-up (not counted); else it counts."""
    info: dict[str, Any] = {}
    fns = {"predict": predict_timer(scene, model, workdir, tile, args.overlap, batch, str(dev), False, info)}
    times: dict[str, list[float]] = {"predict": [], "bare": []}
    memory: dict[str, dict[str, float]] = {}
    first, memory["predict"] = measured(fns["predict"], dev)  # also gives the number of tiles predict runs
    if not warm:
        times["predict"].append(first)  # a later run of a warm process: counts as a measurement
    tiles = int(info["result"]["tiles_run"])
    fns["bare"] = bare_forward(model, tiles, tile, batch, dev)
    fns["bare"]()
    for i in range(repeats):
        for k in (list(fns) if i % 2 == 0 else list(reversed(fns))):
            if len(times[k]) >= repeats:
                continue
            t, memory[k] = measured(fns[k], dev)
            times[k].append(t)
    if polygons:
        t, memory["predict+polygons"] = measured(
            predict_timer(scene, model, workdir, tile, args.overlap, batch, str(dev), True, info), dev)
        times["predict+polygons"] = [t]
    mpx = size * size / 1e6
    med = {k: statistics.median(v) for k, v in times.items()}
    row = {
        "network": name, "tile": tile, "overlap": args.overlap, "batch": batch, "tiles": tiles,
        "seconds": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "mpx_per_s": {k: round(mpx / v, 4) for k, v in med.items()},
        "fraction_of_bare": {k: round(med["bare"] / v, 3) for k, v in med.items() if k != "bare"},
        "gpu_memory_mib": memory,
    }
    return row


def print_row(row: dict[str, Any]) -> None:
    """One network / tile / batch result as aligned lines."""
    print(f"  {row['network']:<12} tile {row['tile']:>4} batch {row['batch']:>3} ({row['tiles']} tiles)")
    for k, v in row["mpx_per_s"].items():
        frac = row["fraction_of_bare"].get(k)
        mem = row["gpu_memory_mib"].get(k, {})
        extra = f"  {100 * frac:5.1f} % of bare" if frac is not None else ""
        peak = f"  GPU peak {mem['allocated']:.0f} MiB allocated / {mem['reserved']:.0f} reserved" if mem else ""
        print(f"    {k:<17} {statistics.median(row['seconds'][k]):7.2f} s  {v:8.3g} Mpx/s{extra}{peak}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--size", type=int, default=8000, help="scene width and height (px)")
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--overlap", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--networks", default="demo,cpu_biocrust", help="demo and/or config names under configs/")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--no-polygons", action="store_true")
    ap.add_argument("--sweep-batches", default="8,16,32")
    ap.add_argument("--sweep-tiles", default="512,1024")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "jess_geo_gpu")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    dev = pick_device(args.device)
    if dev.type == "cuda":
        torch.cuda.init()
    t0 = time.perf_counter()
    scene = make_scene(args.workdir / f"scene_{args.size}.tif", args.size, args.size)
    print(f"scene {args.size} x {args.size} x 3 uint8 (generated, deflate, 256 px blocks) in {time.perf_counter() - t0:.1f} s; "
          f"{device_info(dev)}")
    report: dict[str, Any] = {"device": device_info(dev), "size": args.size, "compare": [], "sweep": []}
    nets = networks(args.networks.split(","), args.workdir, args.tile, args.overlap)
    print(f"end to end vs bare forward: tile {args.tile}, overlap {args.overlap}, batch {args.batch_size}, "
          f"median of {args.repeats} alternating runs after a warm-up; predict+polygons once")
    for name, (path, desc) in nets.items():
        print(f"  {name}: {desc}")
        row = compare(name, path, scene, args.size, args.workdir, args, dev, args.tile, args.batch_size, args.repeats,
                      not args.no_polygons)
        row["description"] = desc
        report["compare"].append(row)
        print_row(row)
    batches = [int(b) for b in args.sweep_batches.split(",") if b]
    tiles = [int(t) for t in args.sweep_tiles.split(",") if t]
    if batches and tiles:
        print(f"sweep (demo network, one predict run (no warm-up) and one bare run (after one) each): batches {batches} x tiles {tiles}")
        for tile in tiles:
            path, _ = networks(["demo"], args.workdir, tile, args.overlap)["demo"]
            for batch in batches:
                row = compare("demo", path, scene, args.size, args.workdir, args, dev, tile, batch, 1, False, warm=False)
                report["sweep"].append(row)
                print_row(row)
        best = max(report["sweep"], key=lambda r: r["mpx_per_s"]["predict"])
        report["best"] = {"tile": best["tile"], "batch": best["batch"], "mpx_per_s": best["mpx_per_s"]["predict"]}
        print(f"best end-to-end setting: tile {best['tile']}, batch {best['batch']}: {best['mpx_per_s']['predict']} Mpx/s")
    report["seconds"] = round(time.perf_counter() - t0, 1)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
