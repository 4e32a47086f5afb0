"""`jess-geo adapt MODEL`: fine-tune an existing model to a new camera or season with JESS."""

from __future__ import annotations

from typing import Any

import click

from jess_geo.cli.train import notice, report, training_options


@click.command("adapt")
@click.argument("model", type=click.Path(dir_okay=False))
@training_options
@click.option("--json", "as_json", is_flag=True, help="Print the final metrics as JSON.")
def command(model: str, config: str | None, quiet: bool, as_json: bool, overwrite: bool, **flags: Any) -> None:
    """Fine-tune MODEL on its labelled source images plus unlabelled --target-images (JESS).

    The new DIR/model.pt keeps MODEL's classes, bands, normalisation and resolution, and records
    in its metadata what it was adapted to (target files, lambda, epochs, base model); `jess-geo
    info` shows it, with the base model's energies before adaptation (`before`). The summary
    compares them with the adapted model's (target, source, gap = target - source). Defaults: the
    base model's training recipe, lr 2e-4, 10 epochs, lambda 0.01.
    """
    from jess_geo.training.adapt import run_adaptation

    result = run_adaptation(model, config, flags, overwrite=overwrite, progress_bar=not quiet, notice=notice)
    if report(result, as_json) and not as_json:
        a = result["adapted"]
        click.echo(f"adapted:  to {a['targets']} target image(s) in {a['folder']}, lambda {a['lambda']}, {a['epochs']} epochs")
        click.echo(f"energy:   {energy_change(a['before'], a['after'])}")


def energy_change(before: dict[str, float], after: dict[str, float]) -> str:
    """'target -9.12 -> -10.40, source ..., gap 1.05 -> 0.21' for the figures both sides have."""
    parts = [f"{name} {before[k]:.3f} -> {after[k]:.3f}"
             for name, k in (("target", "target_energy"), ("source", "source_energy"), ("gap", "energy_gap"))
             if k in before and k in after]
    return ", ".join(parts) + " (mean free energy, base model -> adapted model)" if parts else "not measured"
