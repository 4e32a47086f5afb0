"""Issue 14 must-show figures: batch throughput, scheduler overhead, block-run memory, a killed worker.

    python benchmarks/batch_mustshow.py throughput WORKDIR   # 8 sample-sized scenes: loop vs --workers 2
    python benchmarks/batch_mustshow.py overhead             # per-task round trip on a warm LocalCluster
    python benchmarks/batch_mustshow.py blocks WORKDIR SIZE BLOCK [PIXEL_M]  # block-parallel run, peak RSS per worker
        (PIXEL_M: pixel size of the generated mosaic; 0.0025 = 8x finer than the demo model's 2 cm,
         so a 20000 x 20000 scene is 2500 x 2500 working pixels: the read and assembly are full size)
    python benchmarks/batch_mustshow.py kill WORKDIR         # SIGKILL one worker mid-run

Each mode prints one JSON line. Run modes in separate processes; on a shared machine say so.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import rasterio

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data" / "scene.tif"
CLI = [str(ROOT / ".venv" / "bin" / "jess-geo")]


def _variants(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    with rasterio.open(SAMPLE) as src:
        data, prof = src.read(), src.profile
    out = []
    for i in range(n):
        arr = np.rot90(data, 2 * (i % 2), axes=(1, 2))
        arr = arr[:, :, ::-1] if i % 4 >= 2 else arr
        p = folder / f"plot_{i}.tif"
        with rasterio.open(p, "w", **prof) as dst:
            dst.write(np.ascontiguousarray(arr))
        out.append(p)
    return out


def _mosaic(path: Path, size: int, pixel: float | None = None) -> Path:
    """The sample scene tiled to ``size`` x ``size``; ``pixel`` (metres) overrides its pixel size."""
    with rasterio.open(SAMPLE) as src:
        data, prof = src.read(), dict(src.profile)
    if pixel is not None:
        t = prof["transform"]
        prof["transform"] = rasterio.Affine(pixel, 0, t.c, 0, -pixel, t.f)
    reps = (1, -(-size // data.shape[1]), -(-size // data.shape[2]))
    big = np.tile(data, reps)[:, :size, :size]
    prof.update(width=size, height=size, tiled=True, blockxsize=256, blockysize=256, compress="deflate", BIGTIFF="IF_SAFER")
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(big)
    return path


def throughput(work: Path) -> dict:
    scenes = [str(p) for p in _variants(work / "scenes", 8)]
    res = {}
    for name, extra in (("loop", []), ("workers2", ["--workers", "2"])):
        out = work / f"out_{name}"
        t0 = time.perf_counter()
        args = [*scenes, "--output-dir", str(out)] if extra else [*scenes, "-q"]
        if not extra:  # the sequential loop: today's multi-scene predict in one process, outputs beside scenes
            for s in scenes:
                for p in Path(s).parent.glob(Path(s).stem + "_*"):
                    p.unlink()
        proc = subprocess.run([*CLI, "predict", *args, "--device", "cpu", *extra], capture_output=True, text=True)
        wall = time.perf_counter() - t0
        res[name] = {"rc": proc.returncode, "wall_s": round(wall, 1), "scenes_per_min": round(8 * 60 / wall, 2)}
        if extra:
            summ = json.loads((out / "predict_summary.json").read_text())
            res[name]["sum_task_s"] = round(sum(r["seconds"] for r in summ["records"]), 1)
            res[name]["done"] = summ["done"]
    return res


def overhead(n: int = 40) -> dict:
    from jess_geo.distributed.cluster import open_client

    t0 = time.perf_counter()
    with open_client(workers=2, threads_per_worker=1) as client:
        start = time.perf_counter() - t0
        client.submit(int, 0, pure=False).result()
        t1 = time.perf_counter()
        for i in range(n):  # one after another: the round trip a scene task pays
            client.submit(int, i, pure=False).result()
        serial = (time.perf_counter() - t1) / n
        t2 = time.perf_counter()
        client.gather([client.submit(int, i, pure=False) for i in range(n)])
        batch = (time.perf_counter() - t2) / n
    return {"cluster_start_s": round(start, 2), "round_trip_ms": round(serial * 1e3, 2), "per_task_batched_ms": round(batch * 1e3, 2)}


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def blocks(work: Path, size: int, block: int, pixel: float | None = None) -> dict:
    from jess_geo.distributed.cluster import open_client
    from jess_geo.inference.batch import predict_many
    from jess_geo.models.modelfile import bundled_demo_model

    scene = _mosaic(work / f"mosaic_{size}.tif", size, pixel)
    t0 = time.perf_counter()
    with open_client(workers=2, threads_per_worker=1) as client:
        recs = predict_many([scene], bundled_demo_model(), output_dir=work / f"out_{size}", client=client, block_size=block,
                            threads_per_worker=1, device="cpu", overwrite=True)
        peaks = client.run(_rss_mib)
    return {"size": size, "block": block, "status": recs[0].status, "error": recs[0].error, "tiles": recs[0].tiles,
            "wall_s": round(time.perf_counter() - t0, 1), "worker_peak_rss_mib": {k: round(v) for k, v in peaks.items()},
            "client_peak_rss_mib": round(_rss_mib())}


def kill(work: Path) -> dict:
    from jess_geo.distributed.cluster import open_client
    from jess_geo.inference.batch import predict_many
    from jess_geo.models.modelfile import bundled_demo_model

    scenes = _variants(work / "kscenes", 4)
    out = work / "kout"
    killed: list[int] = []
    with open_client(workers=2, threads_per_worker=1) as client:
        pids = client.run(os.getpid)

        def killer() -> None:  # once the first scene has started writing, kill the worker that writes it
            deadline = time.time() + 600
            while time.time() < deadline and not killed:
                parts = list(out.glob(".*.part-*")) if out.exists() else []
                for p in parts:
                    pid = int(p.name.split(".part-")[1].split(".")[0].split("-")[0])
                    if pid in pids.values():
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)
                        return
                time.sleep(0.05)

        th = threading.Thread(target=killer, daemon=True)
        th.start()
        recs = predict_many(scenes, bundled_demo_model(), output_dir=out, client=client, threads_per_worker=1, device="cpu")
        th.join(timeout=1)
    left = sorted(p.name for p in out.iterdir() if p.name.startswith("."))
    return {"killed_pid": killed, "statuses": [r.status for r in recs], "errors": [r.error for r in recs if r.error],
            "leftover_hidden_files": left}


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "throughput":
        out = throughput(Path(sys.argv[2]))
    elif mode == "overhead":
        out = overhead()
    elif mode == "blocks":
        out = blocks(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]) if len(sys.argv) > 5 else None)
    else:
        out = kill(Path(sys.argv[2]))
    print(json.dumps({"mode": mode, **out}))
