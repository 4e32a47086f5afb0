"""Session settings of ONNX Runtime and OpenVINO against the FLOP limit: which ones matter for throughput.

512 x 512 tiles, batch 4, the demo network exported to fp32 ONNX; every variant and a timed
large sgemm (torch.mm, float32, the same thread count) in its own interpreter; rounds rotate
the order; medians. Variants (T = --threads, default: the cores this process may use):

- ``ort``: the runtime's settings (intra-op threads T, every graph optimisation, arena, memory pattern);
- ``ort-nospin``: the same with the thread pool's spinning off;
- ``ort-extended``: graph optimisation level EXTENDED (no NCHWc layout transformation);
- ``ort-split``: T sessions' worth of work as T concurrent runs of batch / T tiles, one thread each;
- ``ov``: the runtime's settings (latency hint, T threads, f32);
- ``ov-throughput``: throughput hint, T streams, the batch split over T asynchronous requests;
- ``ov-pinned``: latency hint with CPU pinning on.

    .venv/bin/python benchmarks/runtime_settings.py [--rounds 3] [--calls 4] [--threads T] [--variants ort,ov,...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runtime_throughput import _time, model_flops  # noqa: E402  (the same timing and FLOP count)

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "jess_geo" / "assets" / "demo_model.pt"
TILE, BATCH = 512, 4
VARIANTS = ["sgemm", "ort", "ort-nospin", "ort-extended", "ort-split", "ov", "ov-throughput", "ov-pinned"]


def _ort(model: bytes, variant: str, threads: int) -> Callable[[np.ndarray], object]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    split = variant == "ort-split"
    opts.intra_op_num_threads = 1 if split else threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED if variant == "ort-extended"
                                     else ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    if variant == "ort-nospin":
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    if not split:
        return lambda x: session.run(None, {name: x})[0]
    pool = ThreadPoolExecutor(threads)
    return lambda x: list(pool.map(lambda part: session.run(None, {name: part})[0], np.array_split(x, threads)))


def _ov(model: bytes, variant: str, threads: int, shape: tuple[int, ...]) -> Callable[[np.ndarray], object]:
    import openvino as ov

    core = ov.Core()
    net = core.read_model(model, b"")
    config: dict[str, object] = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads}
    if variant == "ov-throughput":
        config.update(PERFORMANCE_HINT="THROUGHPUT", NUM_STREAMS=threads)
        net.reshape({0: [shape[0] // threads, *shape[1:]]})
        compiled = core.compile_model(net, "CPU", config)
        queue = ov.AsyncInferQueue(compiled, threads)

        def run(x: np.ndarray) -> None:
            for part in np.split(x, threads):
                queue.start_async({0: part})
            queue.wait_all()

        return run
    config["PERFORMANCE_HINT"] = "LATENCY"
    if variant == "ov-pinned":
        config["ENABLE_CPU_PINNING"] = True
    net.reshape({0: list(shape)})
    request = core.compile_model(net, "CPU", config).create_infer_request()
    return lambda x: request.infer({0: x})


def child(variant: str, onnx_path: Path, threads: int, calls: int) -> dict:
    """One variant in this process: median seconds per batch (GFLOP/s for sgemm)."""
    x = np.random.default_rng(0).standard_normal((BATCH, 3, TILE, TILE), dtype=np.float32)
    if variant == "sgemm":
        import torch

        torch.set_num_threads(threads)
        n = 3072
        a, b = torch.randn(n, n), torch.randn(n, n)
        s = _time(lambda: torch.mm(a, b), calls)
        return {"seconds": s, "gflops": 2 * n**3 / s / 1e9}
    from jess_geo.inference.onnx_runtime import logits_graph

    model = logits_graph(onnx_path).model
    run = _ort(model, variant, threads) if variant.startswith("ort") else _ov(model, variant, threads, x.shape)
    return {"seconds": _time(lambda: run(x), calls)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--calls", type=int, default=4)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--variants", default=",".join(VARIANTS[1:]))
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--onnx", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.onnx, args.threads, args.calls)))
        return
    from jess_geo.export.onnx_export import export_model

    variants = ["sgemm"] + [v for v in args.variants.split(",") if v and v != "sgemm"]
    flops = model_flops(DEMO)
    print(f"{len(os.sched_getaffinity(0))} cores available, {args.threads} thread(s) per contender; batch {BATCH} x {TILE}^2; "
          f"demo network {flops / 1e9:.2f} GFLOP per tile; {args.rounds} rounds x {args.calls} calls, medians")
    results: dict[str, list[dict]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="jess-geo-settings-") as tmp:
        onnx_path = Path(tmp) / "m512.onnx"
        export_model(DEMO, onnx_path, tile_size=TILE)
        for r in range(args.rounds):
            for v in variants[r % len(variants):] + variants[: r % len(variants)]:
                cmd = [sys.executable, __file__, "--child", v, "--onnx", str(onnx_path), "--threads", str(args.threads), "--calls", str(args.calls)]
                out = subprocess.run(cmd, capture_output=True, text=True)
                if out.returncode != 0:
                    print(f"  {v}: failed ({(out.stderr.strip().splitlines() or [str(out.returncode)])[-1]})")
                    continue
                results[v].append(json.loads(out.stdout.strip().splitlines()[-1]))
    peak = float(np.median([r["gflops"] for r in results["sgemm"]])) * 1e9
    print(f"sgemm peak (3072^2 float32, torch.mm, {args.threads} thread(s)): {peak / 1e9:.1f} GFLOP/s")
    print(f"{'variant':<15} {'s/batch':>8} {'GFLOP/s':>8} {'of peak':>8}  runs")
    for v in variants[1:]:
        if results[v]:
            runs = [r["seconds"] for r in results[v]]
            s = float(np.median(runs))
            gf = BATCH * flops / s
            print(f"{v:<15} {s:8.3f} {gf / 1e9:8.1f} {100 * gf / peak:7.1f}%  {', '.join(f'{t:.3f}' for t in runs)}")


if __name__ == "__main__":
    main()
