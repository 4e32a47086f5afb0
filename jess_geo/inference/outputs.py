"""The output plan: every path a predict run writes, computed and checked in one place.

The command line, :func:`~jess_geo.inference.predict.predict_raster` and (through
``jess-geo predict ... --dry-run --json``) the QGIS plugin all take their names from here.

Names, beside the scene unless given:

- classes: ``<stem>_classes.tif`` (``-o`` names it);
- vector: the class raster's name with ``.gpkg`` (``--vector`` names it, ``--no-vector`` none);
- cover table: ``<base>_cover.csv`` / ``.json`` beside the class raster, where ``<base>`` is its
  stem without a trailing ``_classes`` (``/o/x_classes.tif`` -> ``/o/x_cover.csv``);
- probabilities, energy: only where named.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from jess_geo.errors import OutputError
from jess_geo.io.atomic import lock_holder
from jess_geo.io.raster import is_gdal_path

RASTER_KEYS = ("classes", "probabilities", "energy")
KEYS = ("classes", "vector", "probabilities", "energy", "cover_csv", "cover_json")
RASTER_SUFFIXES = (".tif", ".tiff")
AUTO = "auto"  # vector=AUTO: the default name beside the class raster


def scene_stem(scene: str | Path) -> str:
    """The scene's file name without its extension (also for ``/vsi`` paths)."""
    name = str(scene).rstrip("/").rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[0] if "." in name else name


def scene_folder(scene: str | Path) -> Path:
    """Where default outputs go: the scene's folder (the working folder for ``/vsi`` inputs)."""
    return Path.cwd() if is_gdal_path(scene) else Path(scene).parent


def cover_paths(out_classes: str | Path) -> tuple[Path, Path]:
    """Cover-table paths beside the class raster: ``X_classes.tif`` -> ``X_cover.csv`` / ``X_cover.json``."""
    out = Path(out_classes)
    stem = out.stem[: -len("_classes")] if out.stem.endswith("_classes") and len(out.stem) > 8 else out.stem
    return out.with_name(f"{stem}_cover.csv"), out.with_name(f"{stem}_cover.json")


@dataclass(frozen=True)
class OutputPlan:
    """The outputs of one scene (``None``: not written)."""

    scene: str
    classes: Path
    vector: Path | None = None
    vector_layer: str = "classes"
    probabilities: Path | None = None
    energy: Path | None = None
    cover_csv: Path | None = None
    cover_json: Path | None = None
    notes: tuple[str, ...] = field(default=(), compare=False)

    def paths(self) -> dict[str, Path | None]:
        """``{key: path or None}`` in a fixed order."""
        return {k: getattr(self, k) for k in KEYS}

    def files(self) -> dict[str, Path]:
        """Only the outputs that are written."""
        return {k: p for k, p in self.paths().items() if p is not None}

    def to_json(self) -> dict[str, Any]:
        """The ``outputs`` object of the plan JSON line (contract 2)."""
        out: dict[str, Any] = {k: (str(p) if p is not None else None) for k, p in self.paths().items()}
        out["vector_layer"] = self.vector_layer
        return out


def plan_outputs(scene: str | Path, *, output: str | Path | None = None, vector: str | Path | None = AUTO,
                 probabilities: str | Path | None = None, energy: str | Path | None = None,
                 cover: bool = True, layer: str = "classes") -> OutputPlan:
    """The output paths of ``scene``; ``vector``: a path, :data:`AUTO` (beside the class raster) or None."""
    classes = Path(output) if output is not None else scene_folder(scene) / f"{scene_stem(scene)}_classes.tif"
    vec = classes.with_suffix(".gpkg") if vector == AUTO else (Path(vector) if vector else None)
    csv_path, json_path = cover_paths(classes) if cover else (None, None)
    return OutputPlan(str(scene), classes, vec, layer, Path(probabilities) if probabilities else None,
                      Path(energy) if energy else None, csv_path, json_path)


def _same(a: str | Path, b: str | Path) -> bool:
    if is_gdal_path(a) or is_gdal_path(b):
        return str(a) == str(b)
    return Path(a).resolve() == Path(b).resolve()


def _vector_problem(path: Path, layer: str, overwrite: bool) -> str | None:
    try:
        from jess_geo.io.vector_output import vector_conflict
    except ImportError:  # an older io layer: GeoPackage only, replaced as a whole
        if path.suffix.lower() != ".gpkg":
            return f"Vector output {path} must be a GeoPackage (.gpkg); name it .gpkg."
        return None if overwrite or not path.exists() else f"Output {path} exists already; pass --overwrite to replace it or choose another name."
    return vector_conflict(path, layer, overwrite)


def _problem(key: str, path: Path, layer: str, overwrite: bool, inputs: Iterable[str | Path]) -> str | None:
    if any(_same(path, i) for i in inputs):
        return f"Output {path} is the same file as an input; choose another output name."
    if path.is_dir():
        return f"Output {path} is a folder; give a file name, e.g. {path / ('x' + ('.gpkg' if key == 'vector' else '.tif'))}."
    if key in RASTER_KEYS and path.suffix.lower() not in RASTER_SUFFIXES:
        return f"Output {path} is written as a GeoTIFF; name it .tif or .tiff (the only raster outputs supported)."
    holder = lock_holder(path)
    if holder is not None:
        return f"Output {path} is being written by another jess-geo run (process {holder}); wait for it to finish or choose another name."
    parent = path.absolute().parent
    if not parent.is_dir():
        return f"Output folder {parent} does not exist; create it first."
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"Output folder {parent} is not writable; choose a folder you can write to."
    if key == "vector":
        return _vector_problem(path, layer, overwrite)
    if path.exists() and not overwrite:
        return f"Output {path} exists already; pass --overwrite to replace it or choose another name."
    return None


def check_outputs(plans: Sequence[OutputPlan], *, inputs: Iterable[str | Path] = (), overwrite: bool = False) -> None:
    """Refuse (one-line OutputError) before any work: an output that equals an input (scene or
    model), exists without ``overwrite``, is a folder, has an unsupported extension, sits in a
    missing or read-only folder, or is named twice (in one scene's outputs or across scenes)."""
    inputs = list(inputs)
    seen: dict[str, str] = {}
    for plan in plans:
        for key, path in plan.files().items():
            problem = _problem(key, path, plan.vector_layer, overwrite, [plan.scene, *inputs])
            if problem:
                raise OutputError(problem)
            where = str(path.resolve())
            if where in seen:
                first = seen[where]
                if first == plan.scene:
                    raise OutputError(f"Output {path} is given for two outputs of {scene_stem(plan.scene)}; give each output its own name.")
                raise OutputError(f"Scenes {first} and {plan.scene} would both write {path}; predict them into separate folders or name the outputs.")
            seen[where] = plan.scene
