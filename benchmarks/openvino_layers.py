"""Where a network's time goes in OpenVINO, layer kind by layer kind, against the FLOP limit.

Why the thin-decoder U-Nets sit near 70 % of the sgemm peak (66-72 % in three runs of
runtime_throughput.py for the demo network) while the paper-width one passes by far: this script exports the network (fp32, 512 x 512, batch 4), runs it in
OpenVINO with per-layer counters on (latency hint, every core, f32) and sums time and FLOPs per
kind of layer (a multiply-add counts 2; FLOPs from each convolution's weight and output shapes,
the same count as ``torch.utils.flop_counter``). The sgemm peak is timed in its own process
(3072^2, float32, the faster of torch.mm and NumPy's BLAS, as runtime_throughput.py does).

    .venv/bin/python benchmarks/openvino_layers.py [--model M.pt] [--decoder 128,64,32,16,16] [--calls 5]
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runtime_throughput import BATCH, TILE, with_decoder  # noqa: E402  (the same tiles and decoder swap)

ROOT = Path(__file__).resolve().parents[1]
SGEMM = "import sys; sys.path.insert(0, {here!r}); from runtime_throughput import sgemm_peak; print(sgemm_peak()['gflops'])"


def conv_flops(model) -> dict[str, tuple[str, float]]:
    """Friendly name -> (kind, FLOPs) of every (group) convolution of the OpenVINO model."""
    out = {}
    for op in model.get_ops():
        kind = op.get_type_name()
        if kind not in ("Convolution", "GroupConvolution"):
            continue
        w = [int(d) for d in op.input(1).get_shape()]
        y = [int(d) for d in op.output(0).get_shape()]
        if kind == "GroupConvolution":  # weights: groups, out/g, in/g, kh, kw
            per_output = w[2] * w[3] * w[4]
            label = "depthwise conv" if w[1] == 1 and w[2] == 1 else "grouped conv"
        else:  # weights: out, in, kh, kw
            per_output = w[1] * w[2] * w[3]
            label = "1x1 conv" if w[2] == w[3] == 1 else f"{w[2]}x{w[3]} conv"
            if w[0] < 16:
                label += f", {w[0]} outputs"  # the segmentation head: fewer outputs than a vector register holds
        out[op.get_friendly_name()] = (label, 2.0 * float(np.prod(y)) * per_output)
    return out


def main() -> None:
    import openvino as ov

    from jess_geo.export.onnx_export import export_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=ROOT / "jess_geo" / "assets" / "demo_model.pt")
    ap.add_argument("--decoder", default=None, help="decoder widths, e.g. 128,64,32,16,16 (random decoder weights)")
    ap.add_argument("--calls", type=int, default=5)
    args = ap.parse_args()
    sgemm = SGEMM.format(here=str(Path(__file__).resolve().parent))
    peak = float(subprocess.run([sys.executable, "-c", sgemm], capture_output=True, text=True, check=True).stdout)
    with tempfile.TemporaryDirectory(prefix="jess-geo-layers-") as tmp:
        model = with_decoder(args.model, args.decoder, Path(tmp)) if args.decoder else args.model
        onnx = Path(tmp) / "net.onnx"
        export_model(model, onnx, tile_size=TILE)
        core = ov.Core()
        net = core.read_model(str(onnx))
        net.reshape({0: [BATCH, 3, TILE, TILE]})
        flops = conv_flops(net)
        compiled = core.compile_model(net, "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32", "PERF_COUNT": True})
        request = compiled.create_infer_request()
        x = np.random.default_rng(0).standard_normal((BATCH, 3, TILE, TILE), dtype=np.float32)
        runs = []
        for _ in range(args.calls + 1):  # the first call is warm-up
            request.infer({0: x})
            runs.append([(p.node_name, p.node_type, p.real_time.total_seconds()) for p in request.profiling_info])
    per_node = collections.defaultdict(list)
    for run in runs[1:]:
        for name, kind, s in run:
            per_node[(name, kind)].append(s)
    time_by, flop_by = collections.Counter(), collections.Counter()
    for (name, kind), seconds in per_node.items():
        label, f = flops.get(name, (kind.lower(), 0.0))
        time_by[label] += float(np.median(seconds))
        flop_by[label] += f
    total_s, total_f = sum(time_by.values()), sum(flop_by.values())
    print(f"network: {args.model.name}" + (f" with decoder {args.decoder} (random decoder weights)" if args.decoder else ""))
    print(f"batch {BATCH} x {TILE}^2, OpenVINO {ov.__version__} f32, latency hint; sgemm peak {peak:.1f} GFLOP/s (3072^2)")
    print(f"{'layer kind':28s} {'ms':>7s} {'of time':>8s} {'GFLOP':>7s} {'GFLOP/s':>8s} {'of peak':>8s}")
    for label, s in time_by.most_common():
        rate = flop_by[label] / s / 1e9 if s > 0 and flop_by[label] else 0.0
        peak_part = f"{100 * rate / peak:7.1f}%" if rate else "       -"
        print(f"{label:28s} {1000 * s:7.1f} {100 * s / total_s:7.1f}% {flop_by[label] / 1e9:7.2f} {rate:8.1f} {peak_part}")
    rate = total_f / total_s / 1e9
    print(f"{'all layers':28s} {1000 * total_s:7.1f} {100.0:7.1f}% {total_f / 1e9:7.2f} {rate:8.1f} {100 * rate / peak:7.1f}%")
    needed = total_f / (0.7 * peak * 1e9)
    print(f"70 % of the peak would need {1000 * needed:.1f} ms for this batch ({1000 * (total_s - needed):.1f} ms less).")


if __name__ == "__main__":
    main()
