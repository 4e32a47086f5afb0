"""Run benchmark jobs each in its own process, a few at a time, in order (shared by the benchmarks).

Every contender of a benchmark runs in its own interpreter, so process-wide settings (threads,
allocator) never leak from one into the next; this is the small queue that runs them.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterator


def run_queue(
    jobs: list[dict[str, Any]],
    command: Callable[[dict[str, Any], Path], list[str]],
    spec_path: Callable[[dict[str, Any]], Path],
    log_path: Callable[[dict[str, Any]], Path],
    parallel: int,
    poll_s: float = 2.0,
) -> Iterator[tuple[dict[str, Any], int, float]]:
    """Start ``command(job, spec_file)`` for each job (its spec written as JSON to ``spec_path(job)``,
    output to ``log_path(job)``), ``parallel`` at a time; yield ``(job, returncode, wall seconds)``
    as each one ends."""
    pending = list(jobs)
    running: list[tuple[subprocess.Popen, dict[str, Any], float, Any]] = []
    while pending or running:
        while pending and len(running) < parallel:
            job = pending.pop(0)
            spec = spec_path(job)
            spec.parent.mkdir(parents=True, exist_ok=True)
            spec.write_text(json.dumps(job))
            log = open(log_path(job), "w")
            proc = subprocess.Popen(command(job, spec), stdout=log, stderr=subprocess.STDOUT)
            running.append((proc, job, time.perf_counter(), log))
        time.sleep(poll_s)
        for item in list(running):
            proc, job, t0, log = item
            if proc.poll() is None:
                continue
            running.remove(item)
            log.close()
            yield job, proc.returncode, time.perf_counter() - t0


def niced(*argv: str) -> list[str]:
    """``argv`` run at nice 10 (benchmarks share the machine with the user's work)."""
    return ["nice", "-n", "10", *argv]
