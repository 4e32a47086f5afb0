"""Training step time on the GPU: baseline against JESS with mixed precision (issue 16).

`benchmarks/jess_step_time.py` on a device: the same engine pieces (SceneDataset, torchgeo's
random sampler through `train_loader`, `SegmentationTask.training_step`, channels-last), at the
paper's settings by default (full resolution, 512 px crops, batch 8, the decoder of
configs/baseline_biocrust.yaml), under what `jess-geo train` uses on a GPU: Lightning's
"16-mixed" precision, i.e. float16 autocast around the step plus a gradient scaler. As in
Lightning, the loader's batch is moved to the device before `training_step` (the JESS target
batch is drawn inside the step, on the host). A step: draw the batch, move it, augment,
forward, loss, backward, optimiser step, synchronise. Methods are interleaved step by step
after warm-up steps; medians are reported. Target (issue 16): JESS / baseline <= 1.6.

If the step fails with the batch on the device (an engine bug this benchmark exists to find),
the error is reported and the steps are timed with the batch left on the host instead.

    python benchmarks/gpu_step_time.py [--device auto] [--crop 512] [--batch-size 8] [--json OUT]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_common import arch_from_config, data_dir, device_info, gpu_memory, pick_device, reset_gpu_memory  # noqa: E402

from jess_geo.classes import load_class_table  # noqa: E402
from jess_geo.data.augment import AugmentConfig  # noqa: E402
from jess_geo.data.dataset import SceneDataset, train_loader  # noqa: E402
from jess_geo.data.normalization import compute_stats  # noqa: E402
from jess_geo.data.scenes import load_scene, pair_files  # noqa: E402
from jess_geo.models.factory import architecture_dict, build_model  # noqa: E402
from jess_geo.models.layout import to_fast_layout  # noqa: E402
from jess_geo.training.task import SegmentationTask  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def forever(loader: Any) -> Iterator[dict[str, Any]]:
    """Endless batches from a finite loader."""
    while True:
        yield from loader


def to_device(batch: dict[str, Any], dev: torch.device) -> dict[str, Any]:
    """What Lightning's batch transfer does: every tensor of the batch onto ``dev``."""
    return {k: (v.to(dev, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


def make_step(task: SegmentationTask, batches: Iterator[dict[str, Any]], opt: torch.optim.Optimizer,
              scaler: "torch.amp.GradScaler", dev: torch.device, amp: bool, on_device: bool) -> Callable[[], None]:
    """One optimiser step of ``task`` the way Lightning's 16-mixed precision runs it."""
    autocast = torch.autocast(dev.type, dtype=torch.float16) if amp else contextlib.nullcontext()

    def step() -> None:
        batch = next(batches)
        if on_device:
            batch = to_device(batch, dev)
        with autocast:
            loss = task.training_step(batch, 0)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    return step


def time_methods(methods: dict[str, Callable[[], None]], warmup: int, steps: int, dev: torch.device
                 ) -> tuple[dict[str, list[float]], dict[str, dict[str, float]]]:
    """Interleaved timing; returns seconds per step and the GPU memory peak of each method."""
    times: dict[str, list[float]] = {k: [] for k in methods}
    memory: dict[str, dict[str, float]] = {}
    for i in range(warmup + steps):
        for name, fn in methods.items():
            reset_gpu_memory(dev)
            t0 = time.perf_counter()
            fn()
            if i >= warmup:
                times[name].append(time.perf_counter() - t0)
            memory[name] = gpu_memory(dev)
    return times, memory


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per method (median reported)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--crop", type=int, default=512)
    ap.add_argument("--photo-scale", type=float, default=1.0, help="1.0: full resolution, as in the paper")
    ap.add_argument("--config", type=Path, default=REPO / "configs" / "baseline_biocrust.yaml", help="architecture source")
    ap.add_argument("--no-amp", action="store_true", help="float32 steps (default on CUDA: float16 autocast + scaler)")
    ap.add_argument("--bn", default="split", choices=["split", "mixed", "source"], help="BatchNorm mode of JESS's shared pass")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    dev = pick_device(args.device)
    amp = dev.type == "cuda" and not args.no_amp
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = False  # what `jess-geo train` leaves it at

    t0 = time.perf_counter()
    root = data_dir()
    classes = load_class_table(root / "classes.json")
    res = {"gsd": None, "photo_scale": args.photo_scale}
    scenes = [load_scene(i, m, classes, None, res) for i, m in pair_files(root / "images", root / "masks")]
    source, target = scenes[:-1], scenes[-1:]
    norm = compute_stats(source)
    src_ds = SceneDataset(source, norm, min_extent=args.crop)
    tgt_ds = SceneDataset(target, norm, min_extent=args.crop)
    b = args.batch_size
    load_s = time.perf_counter() - t0

    encoder, decoder = arch_from_config(args.config)
    model = build_model(architecture_dict(encoder, 3, len(classes), decoder)).train()
    aug = AugmentConfig()
    tasks = {
        "baseline": SegmentationTask(model, classes.names, lr=1e-4, augment=aug),
        f"jess ({args.bn} BN)": SegmentationTask(model, classes.names, lr=1e-4, augment=aug, energy_weight=0.01, batchnorm=args.bn,
                                                 target_loader=train_loader(tgt_ds, args.crop, max(1, b // 2), 10**6, 2)),
    }
    for task in tasks.values():
        task.to(dev)
    to_fast_layout(model, dev)  # what SegmentationTask.on_fit_start does
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(dev.type, enabled=amp)
    print(f"{device_info(dev)}; data {root} ({len(source)} source photos, {len(target)} target) loaded in {load_s:.1f} s")
    print(f"batch {b} x {args.crop} px at photo scale {args.photo_scale} (JESS adds {max(1, b // 2)} target crops), "
          f"{encoder} decoder {'-'.join(map(str, decoder))}, {'float16 autocast + grad scaler' if amp else 'float32'}, "
          f"channels-last, {args.warmup} warm-up + {args.steps} timed steps each, interleaved")

    report: dict[str, Any] = {"device": device_info(dev), "batch": b, "crop": args.crop, "photo_scale": args.photo_scale,
                              "amp": amp, "encoder": encoder, "decoder": decoder}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log outside a Trainer
        for on_device in ((True, False) if dev.type != "cpu" else (False,)):
            loaders = {name: forever(train_loader(src_ds, args.crop, b, 10**6, 1)) for name in tasks}
            methods = {name: make_step(task, loaders[name], opt, scaler, dev, amp, on_device) for name, task in tasks.items()}
            try:
                times, memory = time_methods(methods, args.warmup, args.steps, dev)
            except RuntimeError as exc:
                report["batch_on_device_error"] = str(exc).splitlines()[0]
                print(f"  with the batch on the device (as Lightning passes it) the step FAILS: {report['batch_on_device_error']}")
                print("  timing again with the batch on the host")
                continue
            report["batch_on_device"] = on_device
            break
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        mem = memory.get(k) or {}
        peak = f"   GPU peak {mem['allocated']:.0f} MiB allocated / {mem['reserved']:.0f} reserved" if mem else ""
        print(f"  {k:<16} median {v * 1000:8.1f} ms/step   (min {min(times[k]) * 1000:.1f}, max {max(times[k]) * 1000:.1f}){peak}")
    jess_name = f"jess ({args.bn} BN)"
    ratio = med[jess_name] / med["baseline"]
    print(f"JESS ({args.bn} BN) / baseline step-time ratio: {ratio:.2f}  (target <= 1.6: {'met' if ratio <= 1.6 else 'NOT met'}); "
          f"batch on the {'device' if report['batch_on_device'] else 'host'}")
    report.update({"ms_per_step": {k: round(v * 1000, 2) for k, v in med.items()},
                   "seconds": {k: [round(x, 4) for x in v] for k, v in times.items()},
                   "gpu_memory_mib": memory, "ratio": round(ratio, 3)})
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
