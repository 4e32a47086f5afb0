"""`jess-geo export MODEL.pt OUT.onnx`: one self-describing ONNX file for ONNX Runtime, OpenVINO and Deepness."""

from __future__ import annotations

from pathlib import Path

import click

HELP = """Export MODEL (a .pt model file) to OUT (.onnx), checked against PyTorch.

\b
The graph takes (batch, bands, tile, tile) float32 bands normalised with the model's
mean and std (stated in the metadata) and outputs softmax probabilities; jess-geo reads
the logits before the softmax. The height and width are fixed (the tile size, any batch)
unless --dynamic: QGIS Deepness needs a fixed square size, and fixed shapes run faster.
The file's metadata holds the model file's own (jess-geo info OUT.onnx shows it) and
the keys Deepness reads (model type, class names, cm/px, tile size, overlap, mean/std),
so Deepness loads it as it is.

\b
--int8 adds static int8 quantisation calibrated on crops of the images in
--calibration; it is written only if its classes agree with fp32 on at least 98 %
of the calibration pixels (printed).

\b
Run it with: jess-geo predict SCENE --model OUT.onnx [--runtime onnxruntime|openvino]
Needs the onnx extra: pip install 'jess-geo[onnx]'.
"""


@click.command("export", help=HELP)
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--tile-size", type=int, default=None, help="Tile size of the graph in working pixels (default: the model's).")
@click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset (13-20).")
@click.option("--dynamic", is_flag=True, help="Any height and width (multiples of 32) instead of the tile size; not loadable in Deepness.")
@click.option("--int8", is_flag=True, help="Quantise to int8 (static QDQ), calibrated on --calibration.")
@click.option("--calibration", type=click.Path(path_type=Path), default=None, help="Folder of images to calibrate --int8 on.")
@click.option("--min-agreement", type=click.FloatRange(0.0, 1.0), default=0.98, show_default=True,
              help="Smallest class agreement of int8 with fp32 that is accepted.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON line.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
def command(model: Path, out: Path, tile_size: int | None, opset: int, dynamic: bool, int8: bool,
            calibration: Path | None, min_agreement: float, overwrite: bool, as_json: bool, quiet: bool) -> None:
    from jess_geo.export.onnx_export import as_json as result_json
    from jess_geo.export.onnx_export import describe, export_model

    say = None if (quiet or as_json) else click.echo
    result = export_model(model, out, tile_size=tile_size, opset=opset, dynamic=dynamic, int8=int8,
                          calibration=calibration, min_agreement=min_agreement, overwrite=overwrite, notice=say)
    if as_json:
        click.echo(result_json(result))
    elif not quiet:
        click.echo(describe(result))
