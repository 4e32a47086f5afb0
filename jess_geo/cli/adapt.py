"""`jess-geo adapt MODEL --method jess|adabn|tent|histmatch|fewshot|camsim`: a model for a new camera or season."""

from __future__ import annotations

import json
from typing import Any

import click

from jess_geo.adaptation import DEFAULT_METHOD, METHODS
from jess_geo.cli.train import notice, report, training_options


@click.command("adapt")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--method", type=click.Choice(METHODS), default=DEFAULT_METHOD, show_default=True,
              help="jess: fine-tune with the energy term (labelled source + unlabelled target); adabn: BatchNorm statistics "
                   "of the target (seconds, no labels); tent: entropy minimisation of the BatchNorm affine parameters (no "
                   "labels); histmatch: per-band colour lookup table target -> source, applied by predict; fewshot: "
                   "fine-tune on a few labelled target images (--target-masks); camsim: fine-tune on the labelled source "
                   "images rendered with the target camera's colours, blur and noise (measured on --target-images).")
@training_options
@click.option("--steps", type=int, help="tent, fewshot, camsim: optimisation steps (defaults 20, 40 and 240).")
@click.option("--samples", type=int, help="adabn, tent, fewshot, camsim: target crops the saved BatchNorm statistics are averaged over (default 64).")
@click.option("--unlabelled-value", "unlabelled_value", type=int,
              help="fewshot: mask value meaning 'not labelled' (255 always is; pixels outside polygons too).")
@click.option("--source-share", "source_share", type=float,
              help="fewshot with --images/--masks: share of each batch from the labelled source data (default 0.5).")
@click.option("--pseudo-steps", "pseudo_steps", type=int,
              help="camsim: then this many self-training steps on the target, labelled by the model's most confident "
                   "predictions per class (default 0: none).")
@click.option("--pseudo-keep", "pseudo_keep", type=float,
              help="camsim with --pseudo-steps: share of each predicted class's pixels kept as labels (default 0.5).")
@click.option("--label-field", "label_field", help="Class field of polygon labels (default: class_id, class, label or value).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def command(model: str, method: str, config: str | None, quiet: bool, as_json: bool, overwrite: bool, **flags: Any) -> None:
    """Adapt MODEL to a new camera or season; writes --output-dir DIR/model.pt, never MODEL itself.

    \b
    jess      --images S --masks M --target-images T   (10 epochs, lr 2e-4, lambda 0.01; the base recipe)
    adabn     --target-images T                          (no training, no labels)
    tent      --target-images T [--steps --lr]           (no labels)
    histmatch --images S --target-images T             (weights unchanged; predict applies the table)
    fewshot   --target-images T --target-masks L [--images S --masks M] [--unlabelled-value V]
    camsim    --images S --masks M --target-images T [--pseudo-steps N]  (source rendered as the target camera)

    The new model keeps MODEL's classes, bands, normalisation and resolution; its metadata records
    the method, its settings, the base model (name, sha256) and the figures before and after on
    the target (mean entropy and free energy; accuracy and mIoU where --target-masks are given);
    `jess-geo info` shows them. The default, adabn, needs nothing but the new images and helped on
    a camera and a season shift; camsim, which also needs the labelled source data, gained most
    on both (benchmarks/results/adapt_toolbox_recipe.md). `jess-geo check MODEL SCENES` says
    whether a scene looks like a new camera.
    """
    from jess_geo.adaptation.run import run_method

    result = run_method(method, model, config, flags, overwrite=overwrite, progress_bar=not quiet, notice=notice)
    if method == "jess":
        if report(result, as_json) and not as_json:
            a = result["adapted"]
            click.echo(f"adapted:  to {a['targets']} target image(s) in {a['folder']}, lambda {a['lambda']}, {a['epochs']} epochs")
            click.echo(f"energy:   {energy_change(a['before'], a['after'])}")
        return
    if as_json:
        click.echo(json.dumps(result))
        return
    base = result["base_model"]
    click.echo(f"model:    {result['model']}")
    click.echo(f"adapted:  {method} of {base['name']} (sha256 {base['sha256'][:12]}) to {result['targets']} target image(s) "
               f"in {result['seconds']:.1f} s")
    click.echo("settings: " + ", ".join(f"{k} {v}" for k, v in result["settings"].items() if not isinstance(v, (list, dict))))
    camera = result["settings"].get("camera")
    if camera:
        click.echo(f"camera:   target vs source: blur {camera['blur_sigma_px']:.2f} px, noise std {camera['noise_std']:.2f}, "
                   f"contrast x{camera['gain'] ** 0.5:.2f} (fit error {camera['fit_error']:.3f})")
    click.echo(f"target:   {figure_change(result['before'], result['after'])}")


def figure_change(before: dict[str, float], after: dict[str, float]) -> str:
    """'entropy 0.237 -> 0.187, energy ..., accuracy 61.0 % -> 70.2 %' for the figures both sides have."""
    parts = [f"{k} {before[k]:.3f} -> {after[k]:.3f}" for k in ("entropy", "energy") if k in before and k in after]
    parts += [f"{k} {100 * before[k]:.1f} % -> {100 * after[k]:.1f} %" for k in ("accuracy", "miou") if k in before and k in after]
    return ", ".join(parts) + " (base model -> adapted model, fixed target windows)"


def energy_change(before: dict[str, float], after: dict[str, float]) -> str:
    """'target -9.12 -> -10.40, source ..., gap 1.05 -> 0.21' for the figures both sides have."""
    parts = [f"{name} {before[k]:.3f} -> {after[k]:.3f}"
             for name, k in (("target", "target_energy"), ("source", "source_energy"), ("gap", "energy_gap"))
             if k in before and k in after]
    return ", ".join(parts) + " (mean free energy, base model -> adapted model)" if parts else "not measured"
