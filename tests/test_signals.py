"""Stopping predict at any moment (issue 17): SIGTERM/SIGINT around the end of the tile stage.

A small version of ``benchmarks/signal_sweep.py``: the signal is sent at fixed offsets from the
moment predict reports its last tile (while outputs are finished, closed and renamed), not at a
lucky delay from the start. Every run must exit 1 with no file left, or exit 0 with complete,
readable outputs; never a crash.

The sweeps run the demo model exported to ONNX: stopping is the command line's and the output
writers' business, the same for every runtime, and an `.onnx` child starts in about 2 s instead
of 9 (no torch import). The torch runtime (the default) is stopped the same way in two runs of
its own, once in the tile stage and once while outputs are finished.
"""

from __future__ import annotations

import importlib.util
import signal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OFFSETS = (-0.05, 0.0, 0.02, 0.04, 0.07, 0.11, 0.16)  # the .onnx run finishes its outputs in about 0.1-0.3 s


def _sweep_module():
    spec = importlib.util.spec_from_file_location("signal_sweep", ROOT / "benchmarks" / "signal_sweep.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def _check(records: list[dict], unsent: int = 0) -> None:
    for r in records:
        assert not r["crash"], r
        assert r["ok"], r
    # The signals really reached running processes (the last offsets may come after a fast exit).
    assert sum(r["sent"] for r in records) >= len(records) - unsent, records


@pytest.mark.slow
@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT"])
def test_a_signal_at_the_end_of_the_tile_stage_leaves_all_or_nothing(name, cli_command, demo_onnx: Path,
                                                                     tmp_path: Path) -> None:
    sweep = _sweep_module()
    scene = tmp_path / "scene.tif"
    sweep.make_scene(scene, 512)
    sig = getattr(signal, name)
    _check([sweep.one_run(cli_command, scene, tmp_path, sig, off, absolute=False, model=str(demo_onnx))
            for off in OFFSETS], unsent=2)


@pytest.mark.slow
def test_the_torch_runtime_stops_with_all_or_nothing_too(cli_command, tmp_path: Path) -> None:
    sweep = _sweep_module()
    scene = tmp_path / "scene.tif"
    sweep.make_scene(scene, 512)
    _check([sweep.one_run(cli_command, scene, tmp_path, signal.SIGINT, -0.05, absolute=False),
            sweep.one_run(cli_command, scene, tmp_path, signal.SIGTERM, 0.03, absolute=False)])
