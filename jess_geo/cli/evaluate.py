"""`jess-geo evaluate MODEL --images DIR --masks DIR`: accuracy, IoU, F1, confusion matrix."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("evaluate")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--images", required=True, type=click.Path(), help="Folder of images.")
@click.option("--masks", required=True, type=click.Path(), help="Folder of labels paired by file stem.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as one JSON object.")
@click.option("--confusion-png", type=click.Path(dir_okay=False), help="Also write the confusion matrix as a PNG.")
@click.option("--tta", type=click.Choice(["none", "flips", "d4"]), default="none", show_default=True,
              help="Test-time augmentation, as `jess-geo predict --tta`: score the maps predict would write with it.")
def command(model: str, images: str, masks: str, as_json: bool, confusion_png: str | None, tta: str) -> None:
    """Score MODEL on labelled images at their native resolution (nodata and unlabelled pixels left out)."""
    from jess_geo.io.atomic import check_output
    from jess_geo.training.evaluate import evaluate_model
    from jess_geo.training.plots import plot_confusion

    if confusion_png:
        check_output(confusion_png, overwrite=True)
    m = evaluate_model(model, images, masks, tta=tta)
    if confusion_png:
        plot_confusion(m["confusion_matrix"], m["class_names"], Path(confusion_png))
    if as_json:
        click.echo(json.dumps(m))
        return
    click.echo(f"pixels scored:    {m['pixels']}" + (f" (test-time augmentation {tta})" if tta != "none" else ""))
    click.echo(f"overall accuracy: {100 * m['accuracy']:.2f} %")
    click.echo(f"mIoU (present):   {100 * m['miou']:.2f} %")
    click.echo(f"macro P / R / F1: {100 * m['precision_macro']:.1f} / {100 * m['recall_macro']:.1f} / {100 * m['f1_macro']:.1f} %")
    click.echo("per class:            IoU   prec  recall    F1   support")
    for name, c in m["per_class"].items():
        fmt = lambda v: "   -  " if v is None else f"{100 * v:6.1f}"  # noqa: E731
        click.echo(f"  {name[:18]:<18} {fmt(c['iou'])} {fmt(c['precision'])} {fmt(c['recall'])} {fmt(c['f1'])} {c['support']:>9}")
    click.echo("confusion matrix (rows true, columns predicted):")
    for name, row in zip(m["class_names"], m["confusion_matrix"]):
        click.echo(f"  {name[:18]:<18} " + " ".join(f"{v:>9}" for v in row))
    for name, im in m["images"].items():
        click.echo(f"  {name}: accuracy {100 * im['accuracy']:.1f} %, mIoU {100 * im['miou']:.1f} %")
