"""Run the jess-geo command line as a child process and follow its JSON lines (no QGIS, no Qt).

Shared by the QgsTasks (toolbar dialogs) and the Processing algorithms. The lines
themselves are parsed in :mod:`protocol`; the command lines are built in :mod:`request`
(predict) and :mod:`training` (train, adapt).
"""

from __future__ import annotations

import os
import queue
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Union

from .protocol import (
    Canceled,
    Failed,
    OutputPlan,
    Outcome,
    ProgressEvent,
    Success,
    failure_message,
    parse_progress_line,
    plan_from_event,
)
from .request import PredictRequest, build_predict_command

# Variables from QGIS's own Python/GDAL/PROJ that must not leak into the engine's process.
_DROPPED_VARIABLES = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "GDAL_DATA", "GDAL_DRIVER_PATH")
_DROPPED_PREFIXES = ("PROJ_",)

# How long a child gets to clean up after SIGTERM before it is killed.
TERMINATE_TIMEOUT_S = 30.0
# How long to keep reading output after the child exited (pipes held by its children).
STREAM_GRACE_S = 5.0

EventCallback = Callable[[ProgressEvent], None]


@dataclass
class RunResult:
    """How a child process ended, with every JSON event and stderr line it printed."""

    returncode: int
    canceled: bool
    events: List[ProgressEvent] = field(default_factory=list)
    stderr: List[str] = field(default_factory=list)
    stdout: List[str] = field(default_factory=list)  # stdout lines that are not progress events

    def last(self, stage: str) -> Optional[ProgressEvent]:
        """The last event of ``stage`` (None when there was none)."""
        matching = [event for event in self.events if event.stage == stage]
        return matching[-1] if matching else None


def clean_environment(environ: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """A copy of ``environ`` without QGIS's Python, GDAL and PROJ settings."""
    source = os.environ if environ is None else environ
    return {
        key: value
        for key, value in source.items()
        if key not in _DROPPED_VARIABLES and not key.startswith(_DROPPED_PREFIXES)
    }


def popen_options() -> Dict[str, object]:
    """Keyword arguments for Popen that keep a console window from flashing on Windows."""
    if os.name == "nt":
        return {"creationflags": getattr(subprocess, "CREATE_NO_WINDOW", 0)}
    return {"start_new_session": True}


def run_json_command(
    command: List[str],
    on_event: EventCallback = lambda event: None,
    is_canceled: Callable[[], bool] = lambda: False,
    on_log: Callable[[str], None] = lambda line: None,
    poll_interval: float = 0.1,
    terminate_timeout: float = TERMINATE_TIMEOUT_S,
) -> Union[RunResult, Failed]:
    """Run ``command``, pass each JSON line to ``on_event`` and wait; never raises.

    ``is_canceled`` is polled every ``poll_interval`` seconds; when it turns true the child
    gets SIGTERM, then has ``terminate_timeout`` seconds to remove its temporary files
    before it is killed. ``on_log`` gets stderr lines and non-JSON stdout lines.
    Returns Failed only when the program cannot be started.
    """
    try:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=clean_environment(), text=True, encoding="utf-8", errors="replace", bufsize=1,
            **popen_options(),
        )
    except OSError as error:
        return Failed(f"Could not start jess-geo ({command[0]}): {error.strerror or error}.")
    lines: "queue.Queue[tuple[str, Optional[str]]]" = queue.Queue()
    readers = [threading.Thread(target=_pump, args=(stream, name, lines), daemon=True)
               for stream, name in ((process.stdout, "out"), (process.stderr, "err"))]
    for reader in readers:
        reader.start()
    result = RunResult(returncode=0, canceled=False)
    _follow(process, lines, result, on_event, is_canceled, on_log, poll_interval, terminate_timeout)
    for reader in readers:
        reader.join(timeout=5)
    result.returncode = process.wait()
    result.canceled = result.canceled or (is_canceled() and result.returncode != 0)
    return result


def _follow(process, lines, result: RunResult, on_event, is_canceled, on_log, poll_interval, terminate_timeout):
    """Read the child's lines until both streams end (or it exited and went quiet)."""
    open_streams = 2
    exited_at: Optional[float] = None
    while open_streams:
        if not result.canceled and is_canceled():
            result.canceled = True
            terminate(process, terminate_timeout)
        try:
            stream, line = lines.get(timeout=poll_interval)
        except queue.Empty:
            # A grandchild that inherited the pipes must not keep us waiting forever.
            if process.poll() is not None:
                exited_at = exited_at or time.monotonic()
                if time.monotonic() - exited_at > STREAM_GRACE_S:
                    break
            continue
        if line is None:
            open_streams -= 1
            continue
        text = line.rstrip("\n")
        event = parse_progress_line(line) if stream == "out" else None
        if event is None:
            (result.stderr if stream == "err" else result.stdout).append(text)
            if text.strip():
                on_log(text)
            continue
        result.events.append(event)
        if not result.canceled:
            on_event(event)


def _pump(stream, name: str, sink: "queue.Queue[tuple[str, Optional[str]]]") -> None:
    """Copy lines of ``stream`` into ``sink``; a None line marks the end."""
    try:
        for line in iter(stream.readline, ""):
            sink.put((name, line))
    except (OSError, ValueError):
        pass
    finally:
        sink.put((name, None))


def terminate(process: "subprocess.Popen[str]", timeout: float = TERMINATE_TIMEOUT_S) -> None:
    """Ask ``process`` to stop (SIGTERM), wait ``timeout`` seconds, then kill it."""
    if process.poll() is not None:
        return
    try:
        process.terminate()
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_tree(process)
        process.wait()
    except OSError:
        pass


def _kill_tree(process: "subprocess.Popen[str]") -> None:
    """Kill the child and, on POSIX, its process group (it runs in a session of its own)."""
    if os.name != "nt":
        import signal

        try:
            os.killpg(process.pid, signal.SIGKILL)
            return
        except OSError:
            pass
    process.kill()


def plan_predict(executable: str, request: PredictRequest,
                 is_canceled: Callable[[], bool] = lambda: False) -> Union[OutputPlan, Failed, Canceled]:
    """Ask the engine which files ``request`` would write (``--dry-run --json``; writes nothing)."""
    try:
        command = build_predict_command(executable, request, dry_run=True)
    except ValueError as error:
        return Failed(str(error))
    result = run_json_command(command, is_canceled=is_canceled)
    if isinstance(result, Failed):
        return result
    if result.canceled:
        return Canceled()
    plans = [plan for plan in map(plan_from_event, result.events) if plan is not None]
    if result.returncode != 0 or not plans:
        if result.returncode == 0:
            return Failed("jess-geo predict --dry-run printed no output plan; update jess-geo.")
        return Failed(failure_message(result.returncode, result.events, result.stderr))
    return plans[0]


def run_predict(
    executable: str,
    request: PredictRequest,
    on_progress: EventCallback = lambda event: None,
    is_canceled: Callable[[], bool] = lambda: False,
    poll_interval: float = 0.1,
    terminate_timeout: float = TERMINATE_TIMEOUT_S,
    on_log: Callable[[str], None] = lambda line: None,
) -> Outcome:
    """Plan ``request`` with the engine, run ``jess-geo predict`` and wait for it; never raises.

    The plan names every file the run writes: a cancelled run removes any of them that it
    created (the engine itself should leave none).
    """
    plan = plan_predict(executable, request, is_canceled)
    if not isinstance(plan, OutputPlan):
        return plan
    existing_before = {path for path in plan.files() if os.path.exists(path)}
    result = run_json_command(build_predict_command(executable, request), on_progress, is_canceled,
                              on_log, poll_interval, terminate_timeout)
    if isinstance(result, Failed):
        return result
    if result.canceled:
        return Canceled(_remove_new(plan.files(), existing_before))
    if result.returncode != 0:
        return Failed(failure_message(result.returncode, result.events, result.stderr))
    done = result.last("done")
    outputs = {**plan.outputs, **(done.outputs if done is not None else {})}
    return Success(outputs, list(done.classes) if done is not None else [], result.events)


def _remove_new(paths: List[str], existing_before: set) -> List[str]:
    """Delete the files of ``paths`` that did not exist before the run."""
    removed = []
    for path in paths:
        if path in existing_before or not os.path.exists(path):
            continue
        try:
            os.remove(path)
            removed.append(path)
        except OSError:
            pass
    return removed
