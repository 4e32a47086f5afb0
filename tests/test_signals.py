"""Stopping predict at any moment (issue 17): SIGTERM/SIGINT around the end of the tile stage.

A small version of ``benchmarks/signal_sweep.py``: the signal is sent at fixed offsets from the
moment predict reports its last tile (while outputs are finished, closed and renamed), not at a
lucky delay from the start. Every run must exit 1 with no file left, or exit 0 with complete,
readable outputs; never a crash.
"""

from __future__ import annotations

import importlib.util
import signal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OFFSETS = (-0.05, 0.0, 0.03, 0.08, 0.15, 0.3)


def _sweep_module():
    spec = importlib.util.spec_from_file_location("signal_sweep", ROOT / "benchmarks" / "signal_sweep.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


@pytest.mark.slow
@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT"])
def test_a_signal_at_the_end_of_the_tile_stage_leaves_all_or_nothing(name, cli_command, tmp_path: Path) -> None:
    sweep = _sweep_module()
    scene = tmp_path / "scene.tif"
    sweep.make_scene(scene, 512)
    sig = getattr(signal, name)
    records = [sweep.one_run(cli_command, scene, tmp_path, sig, off, absolute=False) for off in OFFSETS]
    for r in records:
        assert not r["crash"], r
        assert r["ok"], r
    assert sum(r["sent"] for r in records) >= len(OFFSETS) - 1  # the signals really reached running processes
