"""The console entry point ends the process itself (no interpreter teardown) without losing anything.

Each test runs ``jess_geo.cli.main.main`` in a fresh interpreter, as the installed ``jess-geo``
script does, and checks what a user or a calling program (the QGIS plugin, a shell pipeline)
relies on: the exit code, every byte of stdout, ``atexit`` work, and threads still running.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import rasterio

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "jess_geo" / "assets" / "demo_model.pt"
SCENE = ROOT / "sample_data" / "scene.tif"


def _main(args: list[str], prelude: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``prelude`` then the console entry point with ``args`` in a new interpreter."""
    code = f"import sys\n{prelude}\nsys.argv = ['jess-geo', *{args!r}]\nfrom jess_geo.cli.main import main\nmain()\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, **(env or {})), cwd=ROOT)


def test_predict_outputs_stdout_and_exit_code_survive_the_fast_exit(tmp_path: Path) -> None:
    out = tmp_path / "classes.tif"
    proc = _main(["predict", str(SCENE), "-o", str(out), "--probabilities", str(tmp_path / "p.tif"), "--json-progress"])
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]  # every line whole, none cut off
    assert lines[-1]["stage"] == "done"
    with rasterio.open(out) as ds:
        assert ds.read(1).shape == (ds.height, ds.width)
    with rasterio.open(tmp_path / "p.tif") as ds:
        assert ds.read().shape[0] == ds.count
    assert (tmp_path / "classes.gpkg").stat().st_size > 0
    assert not [p.name for p in tmp_path.iterdir() if ".tmp" in p.name or p.name.startswith(".")]


def test_error_exit_code_and_atexit_functions_are_kept(tmp_path: Path) -> None:
    marker = tmp_path / "atexit.txt"
    prelude = f"import atexit\natexit.register(lambda: open({str(marker)!r}, 'w').write('ran'))"
    proc = _main(["info", str(tmp_path / "missing.pt")], prelude)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("jess-geo: error: Model file")
    assert marker.read_text() == "ran"


def test_a_running_non_daemon_thread_is_waited_for(tmp_path: Path) -> None:
    marker = tmp_path / "thread.txt"
    prelude = ("import threading, time\n"
               f"threading.Thread(target=lambda: (time.sleep(1.5), open({str(marker)!r}, 'w').write('done'))).start()")
    proc = _main(["info", str(DEMO), "--json"], prelude)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["classes"]
    assert marker.read_text() == "done"  # the ordinary exit waited for the thread


def test_teardown_is_skipped_unless_a_full_exit_is_asked_for(tmp_path: Path) -> None:
    """Module teardown is what the fast exit saves; JESS_GEO_FULL_EXIT=1 (for profilers) keeps it."""
    marker = tmp_path / "teardown.txt"
    prelude = ("class Teardown:\n"
               f"    def __del__(self, open=open): open({str(marker)!r}, 'w').write('torn down')\n"
               "probe = Teardown()")
    fast = _main(["info", str(DEMO)], prelude)
    assert fast.returncode == 0, fast.stderr
    assert not marker.exists()
    full = _main(["info", str(DEMO)], prelude, env={"JESS_GEO_FULL_EXIT": "1"})
    assert full.returncode == 0, full.stderr
    assert marker.read_text() == "torn down"
