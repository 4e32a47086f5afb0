"""What a predict run is asked to do, from the dialog's form to the command line (pure Python).

No Qt, no QGIS, no processes: the dialog reads its widgets into a :class:`PredictForm`,
:func:`request_from_form` checks it, and :func:`build_predict_command` turns the request
into ``jess-geo predict`` arguments. The plugin computes no output name: an empty path means
"the engine's default", and the engine says which names that gives
(``predict ... --dry-run --json``, see :mod:`protocol`); :func:`proposals` decides which form
fields take the engine's names.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

from .protocol import OutputPlan

DEVICES = ("auto", "cpu", "cuda", "mps")
# Test-time augmentation (`predict --tta`): none, the four flips, or the eight dihedral views.
TTA_CHOICES = ("none", "flips", "d4")
# Form fields the engine's plan can fill (the plan key of each).
PROPOSED = ("classes", "vector")


@dataclass(frozen=True)
class PredictRequest:
    """Everything one ``jess-geo predict`` run needs; empty strings mean "the engine's default".

    ``model`` empty means the demo model shipped with jess-geo; an empty classes or vector
    path means the engine's default name (which ``--dry-run --json`` reports).
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
    bbox: Optional[Tuple[float, float, float, float]] = None
    bbox_crs: str = ""
    aoi_path: str = ""
    aoi_layer: str = ""
    bands: Tuple[int, ...] = ()
    tta: str = "none"

    @property
    def scene_name(self) -> str:
        """The scene's file name without extension (used to name the layer group)."""
        return Path(self.scene).stem


@dataclass(frozen=True)
class PredictForm:
    """The dialog's fields as typed (strings and ticks; 0 / -1 spin values mean "default")."""

    scene: str
    scene_problem: str = ""
    model: str = ""
    classes: str = ""
    vector_on: bool = True
    vector: str = ""
    probabilities_on: bool = False
    probabilities: str = ""
    energy_on: bool = False
    energy: str = ""
    tile_size: int = 0
    overlap: int = -1
    device: str = "auto"
    min_area: float = 0.0
    simplify: float = 0.0
    overwrite: bool = False
    area: Optional[Mapping[str, object]] = None
    bands: Tuple[int, ...] = ()
    tta: str = "none"


def request_from_form(form: PredictForm) -> PredictRequest:
    """The request the form describes.

    Raises:
        ValueError: with the sentence to show when the form cannot be run as it is.
    """
    if form.scene_problem:
        raise ValueError(form.scene_problem)
    extras = []
    for ticked, value, label in ((form.probabilities_on, form.probabilities, "probabilities"),
                                 (form.energy_on, form.energy, "energy")):
        if ticked and not value.strip():
            raise ValueError(f"Choose where to write the {label} raster, or untick it.")
        extras.append(value.strip() if ticked else "")
    request = PredictRequest(
        scene=form.scene,
        model=form.model.strip(),
        classes_path=form.classes.strip(),
        vector=form.vector_on,
        vector_path=form.vector.strip() if form.vector_on else "",
        probabilities_path=extras[0],
        energy_path=extras[1],
        tile_size=form.tile_size or None,
        overlap=form.overlap if form.overlap >= 0 else None,
        device=form.device,
        min_area=form.min_area or None,
        simplify=form.simplify or None,
        overwrite=form.overwrite,
        bands=tuple(form.bands),
        tta=form.tta,
        **dict(form.area or {}),
    )
    check_request(request)
    return request


def check_request(request: PredictRequest) -> None:
    """Refuse what cannot become a command line (the engine checks the rest, paths included).

    Raises:
        ValueError: with a sentence ending in a full stop.
    """
    if not request.scene:
        raise ValueError("Choose an input raster to segment.")
    if request.device not in DEVICES:
        raise ValueError(f"Unknown device {request.device!r}; choose one of {', '.join(DEVICES)}.")
    if request.tta not in TTA_CHOICES:
        raise ValueError(f"Unknown test-time augmentation {request.tta!r}; choose one of {', '.join(TTA_CHOICES)}.")
    if request.tile_size is not None and request.tile_size <= 0:
        raise ValueError("The tile size must be a positive number of pixels.")
    if request.overlap is not None and request.overlap < 0:
        raise ValueError("The overlap cannot be negative.")
    for value, label in ((request.min_area, "minimum area"), (request.simplify, "simplify tolerance")):
        if value is not None and value < 0:
            raise ValueError(f"The {label} cannot be negative.")


def build_predict_command(executable: str, request: PredictRequest, *, dry_run: bool = False) -> List[str]:
    """The argument list of ``jess-geo predict`` for ``request``.

    ``dry_run`` asks for the output plan (``--dry-run --json``: one JSON line, nothing
    written) instead of the run (``--json-progress``).

    Raises:
        ValueError: when the request cannot be expressed (see :func:`check_request`).
    """
    check_request(request)
    command = [executable, "predict"]
    if request.model:
        command += ["--model", request.model]
    if request.classes_path:
        command += ["-o", request.classes_path]
    if not request.vector:
        command.append("--no-vector")
    elif request.vector_path:
        command += ["--vector", request.vector_path]
    for option, path in (("--probabilities", request.probabilities_path), ("--energy", request.energy_path)):
        if path:
            command += [option, path]
    if request.tile_size is not None:
        command += ["--tile-size", str(int(request.tile_size))]
    if request.overlap is not None:
        command += ["--overlap", str(int(request.overlap))]
    command += ["--device", request.device]
    if request.tta != "none":
        command += ["--tta", request.tta]
    if request.min_area is not None:
        command += ["--min-area", _number(request.min_area)]
    if request.simplify is not None:
        command += ["--simplify", _number(request.simplify)]
    if request.overwrite:
        command.append("--overwrite")
    command += area_arguments(request)
    if request.bands:
        command += ["--bands", ",".join(str(int(b)) for b in request.bands)]
    command += ["--dry-run", "--json"] if dry_run else ["--json-progress"]
    # The scene goes after "--" so that a file name starting with "-" is not an option.
    return command + ["--", request.scene]


def file_output_problem(path: str, label: str) -> str:
    """'' for a file path, else the sentence refusing a layer that is no file (``memory:``, ``postgres:``...)."""
    scheme, colon, _rest = path.partition(":")
    if colon and len(scheme) > 1 and scheme.isalnum():  # "C:\\x.tif" has a one-letter drive, not a scheme
        return f"{label}: jess-geo writes files, not '{scheme}:' layers; choose a file or a temporary file."
    return ""


def _number(value: float) -> str:
    """Format a float without a trailing ``.0`` for whole numbers (``repr`` otherwise)."""
    as_float = float(value)
    return str(int(as_float)) if as_float.is_integer() else repr(as_float)


def planning_request(form: PredictForm, auto: Mapping[str, str]) -> PredictRequest:
    """The request whose dry run proposes names: the user's own paths kept, proposals left out.

    ``auto`` maps a field (classes, vector) to the value the plan last put there; a field
    still holding it (or empty) is left to the engine, so a new input gets new names.
    """
    user = {key: value for key, value in (("classes", form.classes), ("vector", form.vector))
            if value.strip() and value.strip() != auto.get(key, "")}
    relaxed = replace(form, classes=user.get("classes", ""), vector=user.get("vector", ""),
                      probabilities_on=False, energy_on=False, overwrite=True)
    return request_from_form(relaxed)


def proposals(current: Mapping[str, str], auto: Mapping[str, str], plan: OutputPlan) -> Dict[str, str]:
    """The fields to fill from the engine's plan: those empty or still holding the last proposal."""
    filled = {}
    for key in PROPOSED:
        proposal = plan.outputs.get(key) or ""
        value = current.get(key, "").strip()
        if proposal and (not value or value == auto.get(key, "")):
            filled[key] = proposal
    return filled



def area_arguments(request: PredictRequest) -> List[str]:
    """``--aoi FILE`` or ``--bbox XMIN YMIN XMAX YMAX [--bbox-crs AUTHID]`` (nothing for the entire layer)."""
    if request.aoi_path and request.bbox is not None:
        raise ValueError("Choose one area: a polygon layer or an extent, not both.")
    if request.aoi_path:
        return ["--aoi", request.aoi_path] + (["--aoi-layer", request.aoi_layer] if request.aoi_layer else [])
    if request.bbox is None:
        return []
    xmin, ymin, xmax, ymax = request.bbox
    if not (xmax > xmin and ymax > ymin):
        raise ValueError("The extent is empty; zoom to the part of the layer to segment.")
    return ["--bbox", *(repr(float(v)) for v in request.bbox)] + (["--bbox-crs", request.bbox_crs] if request.bbox_crs else [])
