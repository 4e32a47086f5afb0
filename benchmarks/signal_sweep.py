"""Signal sweep for `jess-geo predict` (issue 17): stop runs at many moments and check what is left.

Each run predicts one generated scene with polygons, probabilities and energy, reading the JSON
progress lines as they come. A signal (SIGTERM or SIGINT) is sent at an offset from the moment
the predict stage reports its last tile (negative: before it, during the tile stage; positive:
while outputs are finished, closed and renamed), or at an absolute time after start. A run is
correct when it exits 1 (stopped) and leaves no file at all, or exits 0 and leaves complete,
readable outputs. Anything else is counted: crashes (killed by a signal, e.g. SIGSEGV), other
exit codes, partial files (``.part-*`` or an incomplete set of outputs).

Usage:
    python benchmarks/signal_sweep.py [--exe .venv/bin/jess-geo] [--signal TERM INT]
        [--size 1536] [--step-ms 20] [--before-ms 300] [--after-ms 700] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = ("x_classes.tif", "x_classes.gpkg", "x_probabilities.tif", "x_energy.tif", "x_cover.csv", "x_cover.json")


def make_scene(path: Path, size: int) -> None:
    """A seeded smooth RGB GeoTIFF with a nodata corner (projected CRS, 2 cm pixels)."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([np.sin(6 * xx + c) * np.cos(5 * yy - c) for c in range(3)])
    img = np.clip(120 + 60 * base + rng.normal(0, 8, base.shape), 1, 255).astype("uint8")
    img[:, : size // 8, : size // 8] = 0
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 3, "dtype": "uint8", "nodata": 0,
               "crs": "EPSG:32612", "transform": from_origin(500000, 4200000, 0.02, 0.02), "tiled": True}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(img)


def outputs_valid(folder: Path) -> bool:
    """True when every expected output exists and opens (rasters and the GeoPackage layer)."""
    import pyogrio
    import rasterio

    try:
        for name in EXPECTED:
            p = folder / name
            if not p.is_file():
                return False
            if p.suffix == ".tif":
                with rasterio.open(p) as src:
                    src.read(1, window=((0, 1), (0, 1)))
            elif p.suffix == ".gpkg":
                pyogrio.read_info(p)
            elif p.suffix == ".json":
                json.loads(p.read_text())
    except Exception:
        return False
    return True


def _default_signals() -> None:
    """Children start with default SIGINT/SIGTERM dispositions (a background shell ignores SIGINT)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def one_run(exe: list[str], scene: Path, work: Path, sig: int, offset: float, absolute: bool,
            model: str | None = None) -> dict:
    """Start predict (``model``: a model file, else the bundled one), send ``sig`` at ``offset``
    seconds (from start if ``absolute``, else from the last tile)."""
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    cmd = [*exe, "predict", str(scene), "-o", str(out / "x_classes.tif"), "--probabilities", str(out / "x_probabilities.tif"),
           "--energy", str(out / "x_energy.tif"), "--json-progress", "--overwrite"]
    if model:
        cmd += ["--model", model]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1, cwd=work,
                            preexec_fn=_default_signals)
    sent = False
    at = t0 + offset if absolute else None
    os.set_blocking(proc.stdout.fileno(), False)  # type: ignore[union-attr]
    buf = ""
    while proc.poll() is None:
        try:
            chunk = proc.stdout.read()  # type: ignore[union-attr]
        except (BlockingIOError, TypeError):
            chunk = None
        if chunk:
            buf += chunk
            *lines, buf = buf.split("\n")
            for line in lines:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if at is None and ev.get("stage") == "predict" and ev.get("total") and ev.get("done") == ev.get("total"):
                    at = time.perf_counter() + offset
        now = time.perf_counter()
        if not sent and at is not None and now >= at:
            proc.send_signal(sig)
            sent = True
        time.sleep(0.002)
    stderr = proc.stderr.read()  # type: ignore[union-attr]
    rc = proc.returncode
    left = sorted(p.name for p in out.iterdir())
    partial = [n for n in left if ".part" in n]
    complete = outputs_valid(out)
    # Killed by the signal's own default action: the signal came before the console script
    # installed its handler (interpreter start-up); correct only when nothing was written.
    early = rc == -sig and sent
    if rc == 0:
        ok = complete and not partial
    elif (rc == 1 and sent) or early:
        ok = not left
    else:
        ok = False
    return {"offset": round(offset, 3), "absolute": absolute, "sent": sent, "rc": rc, "left": left,
            "partial": bool(partial) or (bool(left) and not complete), "crash": rc < 0 and not early,
            "early": early, "ok": ok,
            "stderr": stderr.strip().splitlines()[-1:] if stderr.strip() else [], "seconds": round(time.perf_counter() - t0, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exe", default=str(ROOT / ".venv" / "bin" / "jess-geo"))
    ap.add_argument("--signal", nargs="+", default=["TERM", "INT"], choices=["TERM", "INT"])
    ap.add_argument("--size", type=int, default=1536)
    ap.add_argument("--step-ms", type=int, default=20)
    ap.add_argument("--before-ms", type=int, default=300)
    ap.add_argument("--after-ms", type=int, default=700)
    ap.add_argument("--absolute", type=float, nargs="*", default=[0.3, 1.0, 2.0, 3.0],
                    help="also send at these seconds after start (start-up and tile stage)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--model", default=None, help="model file (.pt or .onnx); default: the bundled demo model")
    ap.add_argument("--json", type=Path, default=None, help="write every run's record here")
    a = ap.parse_args()
    exe = [a.exe] if Path(a.exe).exists() else a.exe.split()
    with tempfile.TemporaryDirectory(prefix="jess-sweep-") as tmp:
        work = Path(tmp)
        scene = work / "scene.tif"
        make_scene(scene, a.size)
        offsets = [ms / 1000 for ms in range(-a.before_ms, a.after_ms + 1, a.step_ms)]
        records = []
        for name in a.signal:
            sig = getattr(signal, f"SIG{name}")
            for _ in range(a.repeats):
                for off in offsets:
                    records.append({"signal": name, **one_run(exe, scene, work, sig, off, absolute=False, model=a.model)})
                for off in a.absolute:
                    records.append({"signal": name, **one_run(exe, scene, work, sig, off, absolute=True, model=a.model)})
                r = records[-1]
            for r in (r for r in records if r["signal"] == name):
                if not r["ok"]:
                    print(f"  SIG{name} offset {r['offset']:+.3f}{' abs' if r['absolute'] else ''}: rc {r['rc']}, left {r['left']}, {r['stderr']}")
    print(f"exe: {' '.join(exe)}; model {a.model or 'bundled demo'}; scene {a.size} x {a.size}")
    for name in a.signal:
        rs = [r for r in records if r["signal"] == name]
        sent = sum(r["sent"] for r in rs)
        print(f"SIG{name}: runs {len(rs)}, signals sent {sent}, crashes {sum(r['crash'] for r in rs)}, "
              f"runs leaving partial files {sum(r['partial'] for r in rs)}, wrong outcome {sum(not r['ok'] for r in rs)}, "
              f"ended before the handler was installed {sum(r.get('early', False) for r in rs)}, "
              f"exit codes {dict(sorted(Counter(r['rc'] for r in rs).items()))}")
    if a.json:
        a.json.write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    sys.exit(main())
