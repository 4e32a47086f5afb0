"""Time one training step: baseline against JESS at the same (source) batch size.

Both run through SegmentationTask.training_step on the same network, the same loaders and the
same optimiser, interleaved step by step (so background load hits both alike), after warm-up
steps; the median of N steps is reported. A step is: draw the batch(es) from the loaders,
augment, forward, loss, backward, optimiser step. JESS adds a target batch of batch_size // 2
crops to the same forward pass. For reference, a step shaped like the original JESS code (three
separate forward passes: source, a second source batch as contrast, and a full target batch) is
timed too. Target (issue 4): JESS / baseline <= 1.6.

    .venv/bin/python benchmarks/jess_step_time.py [--steps 15] [--warmup 3] [--batch-size 8] [--crop 256]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

from jess_geo.classes import load_class_table
from jess_geo.data.augment import AugmentConfig
from jess_geo.data.dataset import SceneDataset, train_loader
from jess_geo.data.normalization import compute_stats
from jess_geo.data.scenes import load_scene, pair_files
from jess_geo.models.factory import architecture_dict, build_model
from jess_geo.models.layout import fast_input, to_fast_layout
from jess_geo.training.energy import free_energy, jess_energy_loss
from jess_geo.training.task import SegmentationTask

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "biocrust_usa"
SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def _forever(loader: Any):  # type: ignore[no-untyped-def]
    while True:
        yield from loader


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=15, help="timed steps per method (median reported)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per method first")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--photo-scale", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--no-reference", action="store_true", help="skip the three-pass reference-code step")
    ap.add_argument("--nchw", action="store_true", help="keep the NCHW layout (jess-geo trains channels-last)")
    ap.add_argument("--bn", nargs="+", default=["split", "mixed"], choices=["split", "mixed", "source"],
                    help="BatchNorm modes of the JESS shared pass to time (the first is the headline ratio)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    root = DATA if DATA.is_dir() else SAMPLE / "train"
    classes = load_class_table((DATA if DATA.is_dir() else SAMPLE) / "classes.json")
    pairs = pair_files(root / "images", root / "masks")
    res = {"gsd": None, "photo_scale": args.photo_scale}
    scenes = [load_scene(i, m, classes, None, res) for i, m in pairs]
    source, target = scenes[:-1], scenes[-1:]
    norm = compute_stats(source)
    src_ds = SceneDataset(source, norm, min_extent=args.crop)
    tgt_ds = SceneDataset(target, norm, min_extent=args.crop)
    b = args.batch_size
    src = _forever(train_loader(src_ds, args.crop, b, 10**6, 1))
    tgt_loader = train_loader(tgt_ds, args.crop, max(1, b // 2), 10**6, 2)
    tgt_full = _forever(train_loader(tgt_ds, args.crop, b, 10**6, 3))

    model = build_model(architecture_dict(in_channels=3, num_classes=len(classes)))
    model.train()
    if not args.nchw:  # what SegmentationTask.on_fit_start does in `jess-geo train`
        to_fast_layout(model, torch.device("cpu"))
    aug = AugmentConfig()
    base = SegmentationTask(model, classes.names, lr=1e-3, augment=aug)
    jess = {mode: SegmentationTask(model, classes.names, lr=1e-3, augment=aug, target_loader=tgt_loader, energy_weight=0.01,
                                   batchnorm=mode) for mode in args.bn}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step_with(task: SegmentationTask) -> Callable[[], None]:
        def run() -> None:
            loss = task.training_step(next(src), 0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return run

    def reference_step() -> None:
        # The reference code's shape: three forward passes, full-size target batch.
        b = next(src)
        x, y = fast_input(b["image"], torch.device("cpu")), b["mask"]
        xc = fast_input(next(src)["image"], torch.device("cpu"))
        xt = fast_input(next(tgt_full)["image"], torch.device("cpu"))
        ce = torch.nn.functional.cross_entropy(model(x), y, ignore_index=255)
        e_loss, _, _ = jess_energy_loss(free_energy(model(xt)), free_energy(model(xc)))
        loss = ce + 0.01 * e_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    methods: dict[str, Callable[[], None]] = {"baseline": step_with(base)}
    methods.update({f"jess ({mode} BN)": step_with(task) for mode, task in jess.items()})
    if not args.no_reference:
        methods["reference 3-pass"] = reference_step
    times: dict[str, list[float]] = {k: [] for k in methods}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log outside a Trainer
        for i in range(args.warmup + args.steps):
            for name, fn in methods.items():
                t0 = time.perf_counter()
                fn()
                if i >= args.warmup:
                    times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"data: {root} (source {len(source)} image(s), target {len(target)}), photo_scale {args.photo_scale}")
    print(f"batch {b} x {args.crop} px (JESS adds {max(1, b // 2)} target crops), {'NCHW' if args.nchw else 'channels-last'}, torch threads {torch.get_num_threads()}, "
          f"{args.warmup} warm-up + {args.steps} timed steps each, interleaved")
    for k, v in med.items():
        print(f"  {k:<20} median {v * 1000:8.1f} ms/step   (min {min(times[k]) * 1000:.1f}, max {max(times[k]) * 1000:.1f})")
    for i, mode in enumerate(args.bn):
        ratio = med[f"jess ({mode} BN)"] / med["baseline"]
        print(f"JESS ({mode} BN) / baseline step-time ratio: {ratio:.2f}" + (f"  (target <= 1.6: {'met' if ratio <= 1.6 else 'NOT met'})" if i == 0 else ""))
    if "reference 3-pass" in med:
        print(f"reference 3-pass / baseline:     {med['reference 3-pass'] / med['baseline']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
