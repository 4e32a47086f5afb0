"""`jess-geo check MODEL SCENES...`: does each scene look like the model's training data, or like a new camera or season?"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from jess_geo.errors import ModelFileError

# What `check` suggests for a shifted scene: AdaBN re-estimates the BatchNorm statistics on the
# new images in seconds, no training; it got +4.9 points of accuracy on the camera split
# (benchmarks/results/domain_shift.md).
SUGGESTED_METHOD = "adabn"
EXIT_SHIFTED = 3

HELP = """Score each SCENE (GeoTIFF or photo, read at MODEL's working resolution like `predict`)
against the training data's feature statistics stored in MODEL (`feature_stats`: the inputs
of a few BatchNorm layers on the training crops). For each scene: the shift score (mean over
those layers of a per-channel Gaussian distance, 0 = identical), the mean entropy of the class
probabilities and the mean free energy, from one pass over at most --max-tiles tiles spread
over the scene (a huge scene costs as much as a small one).

A score above --threshold says the scene looks like a new camera or season, and `check`
suggests `jess-geo adapt`. Defaults (benchmarks/results/shift_score.md, the camera split:
between every unshifted held-out photo and every camera-shifted one): 0.12 against stored
feature_stats; 0.22 for models without them (older files, the demo model, models adapted by
adabn/tent/histmatch/fewshot), which are scored against their BatchNorm running statistics
instead (`check` says so). The season shift of the same benchmark is not detected.

Exit code 0, also for shifted scenes (--fail-on-shift: 3 when any scene looks shifted);
2 on bad input.
"""


def _reference_note(origin: str, meta: dict[str, Any]) -> str:
    if origin == "stored":
        fs = meta["feature_stats"]
        note = f"training data's feature statistics ({fs.get('crops', '?')} crops, {len(fs['layers'])} BatchNorm layers)"
        if meta.get("adaptation"):
            note += "; this model is adapted: the reference is still its source training data"
        return note
    return ("no feature_stats in this model file: using its BatchNorm running statistics instead "
            "(retrain or adapt with this jess-geo to store them)")


def _line(r: dict[str, Any], model: str, threshold: float) -> str:
    head = (f"{r['scene']}: shift score {r['score']:.3f} (threshold {threshold:g}), entropy {r['entropy']:.3f}, "
            f"free energy {r['energy']:.3f}, {r['tiles']}/{r['tiles_total']} tiles: ")
    if not r["shifted"]:
        return head + "looks like the training data"
    return (head + "looks like a new camera or season; adapt the model to it: "
            f"jess-geo adapt {model} --method {SUGGESTED_METHOD} --target-images DIR_OF_SUCH_SCENES --output-dir NEW_DIR "
            "(for a new camera, with the labelled training data at hand, --method camsim --images IMAGES --masks MASKS gained most)")


@click.command("check", help=HELP)
@click.argument("model", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("scenes", nargs=-1, required=True, type=str)
@click.option("--threshold", type=float, default=None, help="Scores above this look shifted (default: the benchmarked value).")
@click.option("--max-tiles", type=int, default=16, show_default=True, help="Tiles read per scene, spread over it.")
@click.option("--metric", type=click.Choice(["kl", "w2", "smd"]), default="kl", show_default=True,
              help="Per-channel distance: symmetric KL, squared Wasserstein-2, standardised mean difference.")
@click.option("--fail-on-shift", is_flag=True, help=f"Exit with code {EXIT_SHIFTED} when any scene looks shifted.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (model, reference, scenes).")
def command(model: Path, scenes: tuple[str, ...], threshold: float | None, max_tiles: int, metric: str,
            fail_on_shift: bool, as_json: bool) -> None:
    """See HELP."""
    from jess_geo.models.modelfile import load_model_file
    from jess_geo.shift.scene import measure_scene, model_reference, threshold_for

    if model.suffix.lower() == ".onnx":
        raise ModelFileError(f"{model.name} is an ONNX model; check needs the network's layers: pass the .pt model file it was exported from.")
    loaded = load_model_file(model, inference=True)  # forward passes only: no smp import
    ref, origin = model_reference(loaded)
    limit = threshold_for(origin) if threshold is None else threshold
    results = [measure_scene(loaded, s, reference=ref, max_tiles=max_tiles, metric=metric, threshold=limit).to_json()
               for s in scenes]
    if as_json:
        click.echo(json.dumps({"model": str(model), "reference": origin, "metric": metric, "threshold": limit,
                               "suggested_method": SUGGESTED_METHOD, "scenes": results}))
    else:
        click.echo(f"{model.name}: reference = {_reference_note(origin, loaded.metadata)}")
        for r in results:
            click.echo(_line(r, str(model), limit))
    if fail_on_shift and any(r["shifted"] for r in results):
        click.get_current_context().exit(EXIT_SHIFTED)
