"""`jess-geo info MODEL`: print a model file's metadata."""

from __future__ import annotations

import json

import click

from jess_geo.errors import ModelFileError
from jess_geo.models.modelfile import bundled_demo_model, read_metadata


@click.command("info")
@click.argument("model", required=False, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the metadata as one JSON object.")
def command(model: str | None, as_json: bool) -> None:
    """Show what a model file is: architecture, bands, classes, resolution, training, metrics."""
    if model is None and not bundled_demo_model().is_file():
        raise ModelFileError("No model file given and no bundled demo model is installed; pass one: jess-geo info MODEL.")
    meta = read_metadata(model or bundled_demo_model())
    if as_json:
        click.echo(json.dumps(meta))
        return
    arch = meta["architecture"]
    click.echo(f"model:        {model or bundled_demo_model()}")
    click.echo(f"jess-geo:     {meta.get('jess_geo_version')}")
    click.echo(f"network:      {arch['arch']} / {arch['encoder']} (decoder {arch.get('decoder_channels')})")
    click.echo(f"bands:        {meta['bands']}  normalisation mean {meta['normalization']['mean']} std {meta['normalization']['std']}")
    res = meta["resolution"]
    click.echo(f"resolution:   gsd {res.get('gsd')}  photo scale {res.get('photo_scale')}")
    click.echo(f"tile/overlap: {meta['tile_size']} / {meta['overlap']}")
    click.echo("classes:")
    for c in meta["classes"]:
        click.echo(f"  {c['id']:>3}  {c['color']}  {c['name']}")
    if meta.get("metrics"):
        m = meta["metrics"]
        click.echo("metrics:      " + "  ".join(f"{k} {v:.4f}" for k, v in m.items() if isinstance(v, (int, float))))
    if meta.get("provenance"):
        click.echo(f"provenance:   {json.dumps(meta['provenance'])}")
    if meta.get("adaptation"):
        click.echo(f"adaptation:   {adaptation_line(meta['adaptation'])}")
        click.echo(f"  record:     {json.dumps(meta['adaptation'])}")
    if meta.get("colour_alignment"):
        c = meta["colour_alignment"]
        click.echo(f"colour:       {c['kind']} of {len(c['bands'])} band(s), target {c.get('target_images')} -> source "
                   f"{c.get('source_images')}; predict applies it to every tile before normalisation")
    if meta.get("training"):
        click.echo(f"training:     {json.dumps(meta['training'])}")
    if meta.get("onnx"):  # an exported .onnx file (jess-geo export)
        g = meta["onnx"]
        size = f"{g['input']['height']} x {g['input']['width']}" if g["input"].get("height") else "any multiple of 32"
        agree = f" (class agreement with fp32 {100 * g['int8_agreement']:.2f} %)" if g.get("int8_agreement") else ""
        click.echo(f"onnx:         {g['precision']}{agree}, opset {g['opset']}, input (batch, {len(meta['bands'])}, {size}) normalised, "
                   f"output softmax probabilities; exported from {g.get('source_model')} {g.get('exported')}")


def adaptation_line(a: dict) -> str:
    """'adabn of base.pt (sha256 ...): samples 64, ...; target entropy 0.24 -> 0.19' (what was done, in one line)."""
    base = a.get("base_model") or {}
    settings = a.get("settings") or {k: a[k] for k in ("lambda", "batchnorm", "epochs", "lr") if k in a}
    text = f"{a.get('method', 'jess')} of {base.get('name', 'a model')}"
    text += f" (sha256 {base['sha256'][:12]})" if base.get("sha256") else ""
    text += ": " + ", ".join(f"{k} {v}" for k, v in settings.items() if not isinstance(v, (list, dict)))
    camera = settings.get("camera")
    if isinstance(camera, dict):  # camsim: the measured target camera
        text += ", camera " + ", ".join(f"{k} {v}" for k, v in camera.items())
    pseudo = settings.get("self_training")
    if isinstance(pseudo, dict):  # camsim --pseudo-steps
        text += ", self-training " + ", ".join(f"{k} {v}" for k, v in pseudo.items())
    before, after = a.get("before") or {}, a.get("after") or {}
    shared = [k for k in before if k in after and isinstance(before[k], (int, float))]
    return text + ("; target " + ", ".join(f"{k} {before[k]:.3f} -> {after[k]:.3f}" for k in shared) if shared else "")
