"""Train and adapt requests: class tables, workspaces and command lines (pure Python).

``jess-geo train`` reads folders (images, and labels paired with them by file stem) and
writes DIR/model.pt with its curves; the plugin prepares those folders in a private
workspace beside the model the user asked for, runs the engine there, and only on success
moves the model to the chosen path (a cancelled or failed run leaves no model file).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .protocol import ClassEntry, parse_classes

# Files of the engine's run folder that are offered to the user at the end.
FIGURES = ("curves.png", "confusion_matrix.png")
# The label field the engine reads first (jess_geo.io.labels.LABEL_FIELDS).
LABEL_FIELD = "class_id"
ACCELERATORS = {"auto": "auto", "cpu": "cpu", "cuda": "gpu", "mps": "mps"}
_CLASS_LINE = re.compile(r"^\s*(\d+)\s+(.+?)\s*(#[0-9a-fA-F]{6})?\s*$")


@dataclass(frozen=True)
class TrainRequest:
    """One ``jess-geo train`` (``base_model`` empty) or ``jess-geo adapt BASE`` run.

    train: ``images`` are labelled rasters; the labels are one polygon file (exported from
    the label layer, field ``class_id``) that covers them; with ``init_model`` the run
    fine-tunes that model (``train --init``: its classes, bands and normalisation). adapt: ``images_dir`` and
    ``masks_dir`` are the base model's labelled source data; ``targets`` the unlabelled layers.
    """

    model_path: str
    images: Sequence[str] = ()
    labels_path: str = ""
    images_dir: str = ""
    masks_dir: str = ""
    classes: Sequence[ClassEntry] = ()
    base_model: str = ""
    targets: Sequence[str] = ()
    init_model: str = ""
    recipe: str = ""
    epochs: Optional[int] = None
    max_minutes: Optional[float] = None
    device: str = "auto"

    @property
    def command_name(self) -> str:
        return "adapt" if self.base_model else "train"


@dataclass(frozen=True)
class Workspace:
    """The private folder a run works in, next to the model it will write."""

    root: str

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    @property
    def run_dir(self) -> str:
        return self.path("run")


@dataclass(frozen=True)
class EpochRow:
    """One row of the engine's curves.csv: a finished epoch and its validation figures."""

    epoch: int
    val_accuracy: Optional[float] = None
    val_miou: Optional[float] = None
    train_loss: Optional[float] = None


@dataclass(frozen=True)
class Trained:
    """A finished run: the model file, the figures kept beside it, and its final metrics."""

    model_path: str
    figures: List[str] = field(default_factory=list)
    metrics: Dict[str, object] = field(default_factory=dict)


def parse_class_lines(text: str) -> List[ClassEntry]:
    """Classes typed one per line as ``ID NAME [#rrggbb]`` (blank lines ignored).

    Raises:
        ValueError: naming the line that cannot be read, an id outside 0-254 or a repeated id.
    """
    classes: List[ClassEntry] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _CLASS_LINE.match(line)
        if match is None:
            raise ValueError(f"Class line {number} ({line.strip()!r}) is not 'ID NAME #rrggbb'; for example '0 bare soil #c9a87c'.")
        class_id, name, colour = int(match.group(1)), match.group(2), match.group(3)
        if class_id > 254:
            raise ValueError(f"Class line {number}: id {class_id} is outside 0-254.")
        if any(c.id == class_id for c in classes):
            raise ValueError(f"Class line {number}: id {class_id} is given twice; give each class its own id.")
        classes.extend(parse_classes([{"id": class_id, "name": name, "color": colour or ""}]))
    if len(classes) < 2:
        raise ValueError("Enter at least two classes, one per line: 'ID NAME #rrggbb'.")
    return classes


def label_value(value: object, classes: Sequence[ClassEntry]) -> Optional[int]:
    """The class id a label feature's field value stands for (an id or a name of the table), or None."""
    if value is None or isinstance(value, bool):
        return None
    ids = {c.id for c in classes}
    if isinstance(value, (int, float)) and float(value).is_integer():
        return int(value) if int(value) in ids else None
    text = str(value).strip()
    if text.isdigit():
        return int(text) if int(text) in ids else None
    by_name = {c.name.lower(): c.id for c in classes}
    return by_name.get(text.lower())


def marked(value: object) -> bool:
    """Whether a "verified" field's value means yes (true, 1, yes, y; NULL and the rest mean no)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value == 1
    return str(value).strip().lower() in ("true", "1", "yes", "y", "t")


def classes_from_info(info: Dict[str, object]) -> List[ClassEntry]:
    """The class table in a model's metadata (``jess-geo info MODEL --json``)."""
    metadata = info.get("metadata") if isinstance(info.get("metadata"), dict) else info
    return parse_classes(metadata.get("classes"))  # type: ignore[union-attr]


def class_lines(classes: Sequence[ClassEntry]) -> str:
    """The text form of a class table (what :func:`parse_class_lines` reads)."""
    return "\n".join(f"{c.id} {c.name} {c.color}" for c in classes)


def class_table_json(classes: Sequence[ClassEntry]) -> str:
    """The class table in the engine's JSON format (``{"id": {"name", "color"}}``)."""
    return json.dumps({str(c.id): {"name": c.name, "color": c.color} for c in classes}, indent=2)


def check_train_request(request: TrainRequest) -> None:
    """Refuse a request that cannot run (one sentence).

    Raises:
        ValueError: what is missing or wrong, and what to do.
    """
    if not request.model_path:
        raise ValueError("Choose where to write the model (.pt).")
    if Path(request.model_path).suffix.lower() != ".pt":
        raise ValueError(f"The model file {request.model_path} must end in .pt; jess-geo trains PyTorch model files.")
    if os.path.exists(request.model_path):
        raise ValueError(f"{request.model_path} already exists; choose a new model file name.")
    if os.path.exists(run_folder(request.model_path)):
        raise ValueError(f"{run_folder(request.model_path)} already exists; choose a new model file name.")
    if request.base_model:
        if not request.targets:
            raise ValueError("Choose the layer to adapt to (the unlabelled target).")
        if not request.images_dir or not request.masks_dir:
            raise ValueError("Choose the folders of the base model's source images and their labels.")
    else:
        if not request.images:
            raise ValueError("Choose at least one raster layer to train on.")
        if not request.labels_path:
            raise ValueError("Choose a polygon layer of labels.")
        if len(request.classes) < 2 and not request.init_model:
            raise ValueError("Give the class table: at least two classes.")
    if request.epochs is not None and request.epochs < 1:
        raise ValueError("The number of epochs must be 1 or more.")
    if request.device not in ACCELERATORS:
        raise ValueError(f"Unknown device {request.device!r}; choose one of {', '.join(ACCELERATORS)}.")


def run_folder(model_path: str) -> str:
    """Where a run's curves, confusion matrix and metrics are kept: ``<model>_training``."""
    path = Path(model_path)
    return str(path.with_name(f"{path.stem}_training"))


def link_names(paths: Sequence[str]) -> List[str]:
    """A distinct file name for each path (the engine pairs images and labels by stem)."""
    names: List[str] = []
    for index, path in enumerate(paths):
        name = Path(path).name
        if name in names or Path(name).stem in {Path(n).stem for n in names}:
            name = f"{index}_{name}"
        names.append(name)
    return names


def build_train_command(executable: str, request: TrainRequest, workspace: Workspace) -> List[str]:
    """The ``jess-geo train`` / ``adapt`` argument list for ``request`` working in ``workspace``."""
    command = [executable, request.command_name]
    if request.base_model:
        command += [request.base_model, "--method", "jess"]
        command += ["--images", request.images_dir, "--masks", request.masks_dir,
                    "--target-images", workspace.path("targets")]
    else:
        command += ["--images", workspace.path("images"), "--masks", workspace.path("masks")]
        command += ["--init", request.init_model] if request.init_model else ["--classes", workspace.path("classes.json")]
    command += ["--output-dir", workspace.run_dir]
    if request.recipe:
        command += ["--config", request.recipe]
    if request.epochs is not None:
        command += ["--epochs", str(int(request.epochs))]
    if request.max_minutes:
        command += ["--max-minutes", repr(float(request.max_minutes))]
    return command + ["--accelerator", ACCELERATORS[request.device], "--quiet", "--json"]


def parse_curves(text: str) -> List[EpochRow]:
    """The epochs recorded so far in the engine's curves.csv (rows it cannot read are skipped)."""
    rows = []
    for record in csv.DictReader(io.StringIO(text)):
        epoch = _number(record.get("epoch"))
        if epoch is None:
            continue
        rows.append(EpochRow(int(epoch), _number(record.get("val_accuracy")), _number(record.get("val_miou")),
                             _number(record.get("train_loss"))))
    return rows


def epoch_text(row: EpochRow, epochs: Optional[int]) -> str:
    """What the dialog shows after an epoch: 'epoch 3/10: validation accuracy 81.2 %, mIoU 60.4 %'."""
    total = f"/{epochs}" if epochs else ""
    figures = [f"{label} {100 * value:.1f} %" for label, value in
               (("validation accuracy", row.val_accuracy), ("mIoU", row.val_miou)) if value is not None]
    return f"epoch {row.epoch}{total}" + (": " + ", ".join(figures) if figures else "")


def final_metrics(lines: Sequence[str]) -> Dict[str, object]:
    """The metrics object ``--json`` prints at the end (the last JSON object on stdout)."""
    for line in reversed(lines):
        text = line.strip()
        if text.startswith("{"):
            try:
                data = json.loads(text)
            except ValueError:
                continue
            if isinstance(data, dict):
                return data
    return {}


def _number(value: object) -> Optional[float]:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


# The adapt run's before/after figures offered as Processing outputs: name -> (side, engine key).
SHIFT_OUTPUTS = {
    "SOURCE_ENERGY_BEFORE": ("before", "source_energy"),
    "TARGET_ENERGY_BEFORE": ("before", "target_energy"),
    "GAP_BEFORE": ("before", "energy_gap"),
    "GAP_AFTER": ("after", "energy_gap"),
}


def energy_shift(metrics: Dict[str, object]) -> Dict[str, Optional[float]]:
    """The SHIFT_OUTPUTS of an ``adapt --json`` result (None where the engine measured none)."""
    adapted = metrics.get("adapted")
    sides = adapted if isinstance(adapted, dict) else {}
    figures = {}
    for name, (side, key) in SHIFT_OUTPUTS.items():
        values = sides.get(side)
        figures[name] = _number(values.get(key)) if isinstance(values, dict) else None
    return figures


def shift_text(metrics: Dict[str, object]) -> str:
    """'target energy before -1.436, after -1.423; gap before ..., after ...' ('' when not measured)."""
    shift = energy_shift(metrics)
    target_after = _number(metrics.get("target_energy"))
    parts = []
    for label, before, after in (("target energy", shift["TARGET_ENERGY_BEFORE"], target_after),
                                 ("gap", shift["GAP_BEFORE"], shift["GAP_AFTER"])):
        if before is not None and after is not None:
            parts.append(f"{label} before {before:.3f}, after {after:.3f}")
    if not parts:
        return ""
    return "; ".join(parts) + " (mean free energy; gap = target - source; base model before, adapted model after)"
