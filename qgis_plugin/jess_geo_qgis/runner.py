"""Run ``jess-geo predict --json-progress`` as a child process (no QGIS, no Qt).

Everything here is plain Python so it can be tested without QGIS and shared by the
QgsTask (toolbar button) and the Processing algorithm. The protocol is the one in
docs/DESIGN.md: one JSON object per line on stdout, with a ``stage`` key.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Union

DEVICES = ("auto", "cpu", "cuda", "mps")

# Variables from QGIS's own Python/GDAL/PROJ that must not leak into the engine's process.
_DROPPED_VARIABLES = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "GDAL_DATA", "GDAL_DRIVER_PATH")
_DROPPED_PREFIXES = ("PROJ_",)

# How long a child gets to clean up after SIGTERM before it is killed.
TERMINATE_TIMEOUT_S = 30.0
# How long to keep reading output after the child exited (pipes held by its children).
STREAM_GRACE_S = 5.0


@dataclass(frozen=True)
class ClassEntry:
    """One class of the model: its pixel value, name and colour (``#rrggbb``)."""

    id: int
    name: str
    color: str


@dataclass(frozen=True)
class PredictRequest:
    """Everything one ``jess-geo predict`` run needs; empty strings mean "the default".

    ``model`` empty means the demo model shipped with jess-geo; an empty output path means
    the engine's default beside the scene (``<stem>_classes.tif`` / ``.gpkg``).
    ``None`` for a numeric option means the model file's (or the engine's) default.
    """

    scene: str
    model: str = ""
    classes_path: str = ""
    vector: bool = True
    vector_path: str = ""
    probabilities_path: str = ""
    energy_path: str = ""
    tile_size: Optional[int] = None
    overlap: Optional[int] = None
    device: str = "auto"
    min_area: Optional[float] = None
    simplify: Optional[float] = None
    overwrite: bool = False

    @property
    def scene_name(self) -> str:
        """The scene's file name without extension (used to name the layer group)."""
        return Path(self.scene).stem


@dataclass(frozen=True)
class ProgressEvent:
    """One parsed line of ``--json-progress`` output."""

    stage: str
    percent: Optional[float] = None
    done: Optional[int] = None
    total: Optional[int] = None
    message: str = ""
    error: str = ""
    outputs: Dict[str, Optional[str]] = field(default_factory=dict)
    classes: List[ClassEntry] = field(default_factory=list)


@dataclass(frozen=True)
class Success:
    """The run finished; ``outputs`` maps kind (classes, vector, ...) to a path or None."""

    outputs: Dict[str, Optional[str]]
    classes: List[ClassEntry]


@dataclass(frozen=True)
class Failed:
    """The run failed; ``message`` is the one sentence to show the user."""

    message: str


@dataclass(frozen=True)
class Canceled:
    """The user cancelled the run; no output files were left behind."""

    removed: List[str] = field(default_factory=list)


Outcome = Union[Success, Failed, Canceled]


def build_predict_command(executable: str, request: PredictRequest) -> List[str]:
    """Return the argument list of ``jess-geo predict`` for ``request``.

    Raises:
        ValueError: when the request cannot be expressed (no scene, unknown device,
            negative sizes).
    """
    if not request.scene:
        raise ValueError("Choose an input raster to segment.")
    if request.device not in DEVICES:
        raise ValueError(f"Unknown device {request.device!r}; choose one of {', '.join(DEVICES)}.")
    command = [executable, "predict"]
    if request.model:
        command += ["--model", request.model]
    if request.classes_path:
        command += ["-o", request.classes_path]
    if not request.vector:
        command.append("--no-vector")
    elif request.vector_path:
        command += ["--vector", request.vector_path]
    if request.probabilities_path:
        command += ["--probabilities", request.probabilities_path]
    if request.energy_path:
        command += ["--energy", request.energy_path]
    if request.tile_size is not None:
        if request.tile_size <= 0:
            raise ValueError("The tile size must be a positive number of pixels.")
        command += ["--tile-size", str(int(request.tile_size))]
    if request.overlap is not None:
        if request.overlap < 0:
            raise ValueError("The overlap cannot be negative.")
        command += ["--overlap", str(int(request.overlap))]
    command += ["--device", request.device]
    if request.min_area is not None:
        command += ["--min-area", _number(request.min_area)]
    if request.simplify is not None:
        command += ["--simplify", _number(request.simplify)]
    if request.overwrite:
        command.append("--overwrite")
    # The scene goes after "--" so that a file name starting with "-" is not an option.
    return command + ["--json-progress", "--", request.scene]


def _number(value: float) -> str:
    """Format a float without a trailing ``.0`` for whole numbers (``repr`` otherwise)."""
    as_float = float(value)
    return str(int(as_float)) if as_float.is_integer() else repr(as_float)


def expected_outputs(request: PredictRequest) -> List[str]:
    """The files a run of ``request`` writes, defaults beside the scene included."""
    scene = Path(request.scene)
    stem_path = scene.with_name(scene.stem)
    paths = [request.classes_path or f"{stem_path}_classes.tif"]
    if request.vector:
        paths.append(request.vector_path or f"{stem_path}_classes.gpkg")
    paths += [p for p in (request.probabilities_path, request.energy_path) if p]
    classes = Path(paths[0])
    paths += [f"{stem_path}_cover.csv", f"{stem_path}_cover.json"]
    # The cover table may follow the class raster's name instead of the scene's.
    cover_stem = classes.with_name(classes.stem)
    paths += [f"{cover_stem}_cover.csv", f"{cover_stem}_cover.json"]
    unique: List[str] = []
    for path in paths:
        if path not in unique:
            unique.append(path)
    return unique


def parse_progress_line(line: str) -> Optional[ProgressEvent]:
    """Parse one stdout line of ``--json-progress``; None for anything else."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("stage"), str):
        return None
    return ProgressEvent(
        stage=data["stage"],
        percent=_optional_float(data.get("percent")),
        done=_optional_int(data.get("done")),
        total=_optional_int(data.get("total")),
        message=str(data.get("message") or ""),
        error=str(data.get("error") or ""),
        outputs=_outputs(data.get("outputs")),
        classes=parse_classes(data.get("classes")),
    )


def parse_classes(value: object) -> List[ClassEntry]:
    """Read a ``classes`` list (``[{"id", "name", "color"}...]``); bad entries are skipped."""
    if not isinstance(value, list):
        return []
    classes = []
    for item in value:
        if not isinstance(item, dict):
            continue
        class_id = _optional_int(item.get("id"))
        if class_id is None:
            continue
        name = str(item.get("name") or f"class {class_id}")
        color = str(item.get("color") or "")
        if not _is_hex_colour(color):
            color = _fallback_colour(class_id)
        classes.append(ClassEntry(class_id, name, color.lower()))
    return classes


def _is_hex_colour(text: str) -> bool:
    if len(text) != 7 or not text.startswith("#"):
        return False
    try:
        int(text[1:], 16)
    except ValueError:
        return False
    return True


def _fallback_colour(class_id: int) -> str:
    """A stable, distinct colour for a class without one (golden-angle hues)."""
    import colorsys

    hue = (class_id * 0.618033988749895) % 1.0
    red, green, blue = colorsys.hsv_to_rgb(hue, 0.65, 0.9)
    return "#{:02x}{:02x}{:02x}".format(int(red * 255), int(green * 255), int(blue * 255))


def _optional_float(value: object) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _optional_int(value: object) -> Optional[int]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)


def _outputs(value: object) -> Dict[str, Optional[str]]:
    if not isinstance(value, dict):
        return {}
    return {str(k): (str(v) if v else None) for k, v in value.items()}


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


def error_from_stderr(stderr: str) -> str:
    """The engine's one-line error (``jess-geo: error: ...``) from its stderr, or ''."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        marker = "error:"
        if line.lower().startswith("jess-geo") and marker in line.lower():
            return line[line.lower().index(marker) + len(marker):].strip()
    for line in reversed(lines):
        if line.lower().startswith("error:"):
            return line[len("error:"):].strip()
    return ""


def run_predict(
    executable: str,
    request: PredictRequest,
    on_progress: Callable[[ProgressEvent], None] = lambda event: None,
    is_canceled: Callable[[], bool] = lambda: False,
    poll_interval: float = 0.1,
    terminate_timeout: float = TERMINATE_TIMEOUT_S,
    on_log: Callable[[str], None] = lambda line: None,
) -> Outcome:
    """Run ``jess-geo predict`` for ``request`` and wait for it; never raises.

    ``on_progress`` gets every JSON event (from this thread); ``is_canceled`` is polled
    every ``poll_interval`` seconds; when it turns true the child gets SIGTERM, then has
    ``terminate_timeout`` seconds to remove its temporary files before it is killed.
    ``on_log`` gets the child's stderr lines and any non-JSON stdout lines.
    """
    try:
        command = build_predict_command(executable, request)
    except ValueError as error:
        return Failed(str(error))
    existing_before = {path for path in expected_outputs(request) if os.path.exists(path)}
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=clean_environment(),
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            **popen_options(),
        )
    except OSError as error:
        return Failed(f"Could not start jess-geo ({executable}): {error.strerror or error}.")

    lines: "queue.Queue[tuple[str, Optional[str]]]" = queue.Queue()
    stderr_lines: List[str] = []
    readers = [
        threading.Thread(target=_pump, args=(process.stdout, "out", lines), daemon=True),
        threading.Thread(target=_pump, args=(process.stderr, "err", lines), daemon=True),
    ]
    for reader in readers:
        reader.start()

    done_event: Optional[ProgressEvent] = None
    error_event: Optional[ProgressEvent] = None
    canceled = False
    open_streams = 2
    exited_at: Optional[float] = None
    while open_streams:
        if not canceled and is_canceled():
            canceled = True
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
        if stream == "err":
            stderr_lines.append(line.rstrip("\n"))
            on_log(line.rstrip("\n"))
            continue
        event = parse_progress_line(line)
        if event is None:
            if line.strip():
                on_log(line.rstrip("\n"))
            continue
        if event.stage == "done":
            done_event = event
        elif event.stage == "error":
            error_event = event
        if not canceled:
            on_progress(event)
    for reader in readers:
        reader.join(timeout=5)
    returncode = process.wait()

    if canceled or (is_canceled() and returncode != 0):
        removed = _remove_new_outputs(request, existing_before)
        return Canceled(removed)
    if returncode == 0:
        if done_event is not None:
            outputs = dict(done_event.outputs) or _outputs_from_request(request)
            return Success(outputs, list(done_event.classes))
        return Success(_outputs_from_request(request), [])
    if error_event is not None and error_event.error:
        return Failed(error_event.error)
    message = error_from_stderr("\n".join(stderr_lines))
    if message:
        return Failed(message)
    tail = " ".join(line.strip() for line in stderr_lines[-3:] if line.strip())
    detail = f": {tail}" if tail else "."
    return Failed(f"jess-geo stopped with exit code {returncode}{detail}")


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


def _outputs_from_request(request: PredictRequest) -> Dict[str, Optional[str]]:
    scene = Path(request.scene)
    stem_path = scene.with_name(scene.stem)
    vector = (request.vector_path or f"{stem_path}_classes.gpkg") if request.vector else None
    return {
        "classes": request.classes_path or f"{stem_path}_classes.tif",
        "vector": vector,
        "probabilities": request.probabilities_path or None,
        "energy": request.energy_path or None,
    }


def _remove_new_outputs(request: PredictRequest, existing_before: set) -> List[str]:
    """Delete outputs that a cancelled run created (the engine should leave none)."""
    removed = []
    for path in expected_outputs(request):
        if path in existing_before or not os.path.exists(path):
            continue
        try:
            os.remove(path)
            removed.append(path)
        except OSError:
            pass
    return removed

