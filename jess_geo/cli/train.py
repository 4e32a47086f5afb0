"""`jess-geo train`: baseline or JESS training from folders of images and labels."""

from __future__ import annotations

import json
from typing import Any

import click

from jess_geo.training.config import load_config
from jess_geo.training.config_check import LOSSES


def training_options(f: Any) -> Any:
    """Options shared by `train` and `adapt` (flags override the YAML config; ranges are checked with it)."""
    opts = [
        click.option("--images", type=click.Path(), help="Folder of training images (GeoTIFF, PNG, JPEG)."),
        click.option("--masks", type=click.Path(), help="Folder of labels paired with the images by file stem (class rasters or polygons)."),
        click.option("--output-dir", "output_dir", type=click.Path(), help="Where model.pt, metrics.json and curves go."),
        click.option("--overwrite", is_flag=True, help="Replace a model.pt of another run in --output-dir (this run's own checkpoint resumes without it)."),
        click.option("--config", "config", type=click.Path(), help="YAML config (see configs/); flags override it."),
        click.option("--epochs", type=int, help="Number of epochs (at least 1)."),
        click.option("--max-minutes", "max_minutes", type=float, help="Stop after this many minutes of training (> 0)."),
        click.option("--lr", type=float, help="Peak learning rate (> 0)."),
        click.option("--batch-size", "batch_size", type=int, help="Crops per step (at least 1)."),
        click.option("--crop-size", "crop_size", type=int, help="Training crop size in working-resolution pixels (multiple of 32)."),
        click.option("--seed", type=int, help="Random seed (splits, crops, augmentation, weights)."),
        click.option("--target-images", "target_images", type=click.Path(), help="Unlabelled images from the target camera (JESS)."),
        click.option("--target-masks", "target_masks", type=click.Path(), help="Labels of the target images, used only to report target metrics."),
        click.option("--energy-weight", "--lambda", "energy_weight", type=float, help="JESS energy weight lambda (default 0.01)."),
        click.option("--jess-batchnorm", "jess_batchnorm", type=click.Choice(["split", "mixed", "source"]),
                     help="BatchNorm statistics in JESS's shared pass (default split: each domain its own; the model keeps the target's)."),
        click.option("--accelerator", help="Lightning accelerator: auto, cpu, gpu, mps."),
        click.option("--devices", help="Devices per node: auto, a count (2) or ids (0,1)."),
        click.option("--num-nodes", "num_nodes", type=int, help="Machines taking part (DDP; default 1)."),
        click.option("--strategy", help="Lightning strategy: auto or ddp (one process per device; files are written by rank zero)."),
        click.option("--quiet", is_flag=True, help="No progress bar."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def print_summary(result: dict[str, Any]) -> None:
    """A short human summary of a finished training."""
    click.echo(f"model:    {result['model']}")
    click.echo(f"epochs:   {result['epochs_run']} in {result['minutes']:.1f} min (best epoch {result.get('best_epoch')})")
    for key in ("val_accuracy", "val_miou", "target_accuracy", "target_miou"):
        if result.get(key) is not None:
            click.echo(f"{key + ':':<17}{100 * result[key]:.1f} %")
    v = result.get("validation") or {}
    for name, m in (v.get("per_class") or {}).items():
        if m.get("iou") is not None:
            click.echo(f"  IoU {name:<24}{100 * m['iou']:.1f} %")


def notice(text: str) -> None:
    """A training notice (an image with more bands than the run reads, a single labelled image) on stderr."""
    click.echo(f"notice: {text}", err=True)


def report(result: dict[str, Any], as_json: bool) -> bool:
    """Print the result (JSON or summary) on global rank zero; returns whether it printed."""
    if result.get("global_rank", 0) != 0:
        return False
    if as_json:
        click.echo(json.dumps({k: v for k, v in result.items() if k not in ("config", "global_rank")}))
    else:
        print_summary(result)
    return True


@click.command("train")
@training_options
@click.option("--classes", type=click.Path(), help="Class table (JSON or YAML: id -> name, color).")
@click.option("--method", type=click.Choice(["baseline", "jess"]), help="baseline (cross-entropy) or jess (adds the energy term).")
@click.option("--encoder", help="smp encoder name (default timm-tf_efficientnet_lite0).")
@click.option("--encoder-weights", "encoder_weights", help="imagenet, none, or a path to a weights file.")
@click.option("--loss", type=click.Choice(LOSSES),
              help="Training loss: ce (default), wce (class weights from label frequencies), ce+dice, ce+lovasz, focal, wfocal.")
@click.option("--balance", type=float,
              help="Share of training crops centred on a pixel of a rare class, 0-1 (default 0: uniform random crops).")
@click.option("--photo-scale", "photo_scale", type=float, help="Working scale for photos (0.5 = half size).")
@click.option("--gsd", type=float, help="Working ground sampling distance for georeferenced images (CRS units).")
@click.option("--init", "init", type=click.Path(dir_okay=False),
              help="Fine-tune this model file (its weights, classes, bands, normalisation, resolution) on the new labels.")
@click.option("--json", "as_json", is_flag=True, help="Print the final metrics as JSON.")
def command(config: str | None, quiet: bool, as_json: bool, overwrite: bool, init: str | None, **flags: Any) -> None:
    """Train a U-Net on labelled images; writes DIR/model.pt (best by validation mIoU), metrics, curves.

    With --init MODEL the run starts from MODEL and keeps its class table (labels use its ids),
    bands, normalisation and resolution; defaults lr 2e-4, 5 epochs, no warm-up. The new model
    records `init_model` (name, path, sha256).
    """
    if init is not None:
        from jess_geo.training.finetune import run_finetune

        result = run_finetune(init, config, flags, overwrite=overwrite, progress_bar=not quiet, notice=notice)
        if report(result, as_json) and not as_json:
            click.echo(f"init:     {result['init_model']['name']} (sha256 {result['init_model']['sha256'][:12]})")
        return
    from jess_geo.training.train import run_training

    cfg = load_config(config, flags)
    report(run_training(cfg, progress_bar=not quiet, overwrite=overwrite, notice=notice), as_json)
