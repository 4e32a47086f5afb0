"""The engine's machine-readable output, parsed (pure Python: no Qt, no QGIS, no processes).

``jess-geo ... --json-progress`` prints one JSON object per line on stdout, each with a
``stage`` key ("predict", "vectorize", "message", "done", "error", ...).
``jess-geo predict ... --dry-run --json`` prints one ``{"stage": "plan", ...}`` line per
scene with every output path the run would write; the plugin takes names only from there.
"""

from __future__ import annotations

import colorsys
import json
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Union

# Keys of a plan's "outputs" that are not file paths.
NOT_FILES = ("vector_layer",)


@dataclass(frozen=True)
class ClassEntry:
    """One class of the model: its pixel value, name and colour (``#rrggbb``)."""

    id: int
    name: str
    color: str


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
    data: Dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class OutputPlan:
    """What ``predict --dry-run --json`` says one scene's run would write."""

    scene: str
    outputs: Dict[str, Optional[str]]
    tiles: Optional[int] = None
    tile_size: Optional[int] = None
    overlap: Optional[int] = None
    working_size: Optional[Tuple[int, int]] = None

    def files(self) -> List[str]:
        """Every file the run would write, in the engine's order (layer names left out)."""
        return [path for key, path in self.outputs.items() if path and key not in NOT_FILES]


@dataclass(frozen=True)
class Success:
    """The run finished; ``outputs`` maps kind (classes, vector, ...) to a path or None."""

    outputs: Dict[str, Optional[str]]
    classes: List[ClassEntry]
    events: List[ProgressEvent] = field(default_factory=list)


@dataclass(frozen=True)
class Failed:
    """The run failed; ``message`` is the one sentence to show the user."""

    message: str


@dataclass(frozen=True)
class Canceled:
    """The user cancelled the run; no output files were left behind."""

    removed: List[str] = field(default_factory=list)


Outcome = Union[Success, Failed, Canceled]


def notices(events: List[ProgressEvent]) -> List[str]:
    """The engine's notices about the finished run (e.g. a scene unlike the model's training data)."""
    return [str(e.data["notice"]) for e in events if e.stage == "done" and e.data.get("notice")]


def parse_json_line(line: str) -> Optional[Dict[str, object]]:
    """The JSON object on ``line`` when it has a string ``stage``; None for anything else."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("stage"), str):
        return None
    return data


def parse_progress_line(line: str) -> Optional[ProgressEvent]:
    """Parse one stdout line of ``--json-progress``; None for anything else."""
    data = parse_json_line(line)
    if data is None:
        return None
    return ProgressEvent(
        stage=str(data["stage"]),
        percent=_optional_float(data.get("percent")),
        done=_optional_int(data.get("done")),
        total=_optional_int(data.get("total")),
        message=str(data.get("message") or ""),
        error=str(data.get("error") or ""),
        outputs=_outputs(data.get("outputs")),
        classes=parse_classes(data.get("classes")),
        data=data,
    )


def plan_from_event(event: ProgressEvent) -> Optional[OutputPlan]:
    """The OutputPlan carried by a ``plan`` event (None for other stages or no classes path)."""
    if event.stage != "plan" or not event.outputs.get("classes"):
        return None
    size = event.data.get("working_size")
    working = None
    if isinstance(size, list) and len(size) == 2 and all(_optional_int(v) is not None for v in size):
        working = (int(size[0]), int(size[1]))
    return OutputPlan(
        scene=str(event.data.get("scene") or ""),
        outputs=dict(event.outputs),
        tiles=_optional_int(event.data.get("tiles")),
        tile_size=_optional_int(event.data.get("tile_size")),
        overlap=_optional_int(event.data.get("overlap")),
        working_size=working,
    )


def parse_plans(stdout: str) -> List[OutputPlan]:
    """Every plan line of a ``--dry-run --json`` run's stdout, in order."""
    plans = []
    for line in stdout.splitlines():
        event = parse_progress_line(line)
        plan = plan_from_event(event) if event is not None else None
        if plan is not None:
            plans.append(plan)
    return plans


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
            color = fallback_colour(class_id)
        classes.append(ClassEntry(class_id, name, color.lower()))
    return classes


def error_from_stderr(stderr: str) -> str:
    """The engine's one-line error (``jess-geo: error: ...``) from its stderr, or ''."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    marker = "error:"
    for line in reversed(lines):
        if line.lower().startswith("jess-geo") and marker in line.lower():
            return line[line.lower().index(marker) + len(marker):].strip()
    for line in reversed(lines):
        if line.lower().startswith(marker):
            return line[len(marker):].strip()
    return ""


def failure_message(returncode: int, events: List[ProgressEvent], stderr_lines: List[str]) -> str:
    """The one sentence for a failed run: the engine's error line, else its stderr, else the code."""
    errors = [event.error for event in events if event.stage == "error" and event.error]
    if errors:
        return errors[-1]
    message = error_from_stderr("\n".join(stderr_lines))
    if message:
        return message
    tail = " ".join(line.strip() for line in stderr_lines[-3:] if line.strip())
    detail = f": {tail}" if tail else "."
    return f"jess-geo stopped with exit code {returncode}{detail}"


def _is_hex_colour(text: str) -> bool:
    if len(text) != 7 or not text.startswith("#"):
        return False
    try:
        int(text[1:], 16)
    except ValueError:
        return False
    return True


def fallback_colour(class_id: int) -> str:
    """A stable, distinct colour for a class without one (golden-angle hues)."""
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
