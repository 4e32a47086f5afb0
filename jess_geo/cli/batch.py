"""`jess-geo predict SCENES... --output-dir DIR [--workers N | --scheduler ADDR] [--block-size PX]`.

The batch form of predict: one call to :func:`jess_geo.inference.batch.predict_many`; this module
only prints what comes back (a line per scene on stderr, or JSON lines on stdout with
--json-progress) and turns failed scenes into the exit code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from jess_geo.errors import InputError, JessGeoError

BATCH_ONLY_NOT = ("output", "vector", "probabilities", "energy", "dry_run")


def _line(rec: Any, prog: Any) -> str:
    eta = prog.eta_s
    left = f", about {eta:.0f} s left" if eta is not None and eta >= 1 and prog.done < prog.total else ""
    what = {"done": f"done in {rec.seconds:.1f} s, {rec.tiles} tiles", "skipped": "skipped (outputs exist; --overwrite redoes it)",
            "failed": "failed"}.get(rec.status, rec.status)
    return f"[{prog.done}/{prog.total}] {rec.scene}: {what}{left}"


def run_batch_command(scenes: tuple[str, ...], model: Path, *, output_dir: Path | None, workers: int | None,
                      scheduler: str | None, threads_per_worker: int | None, block_size: int | None,
                      no_vector: bool, layer: str, json_progress: bool, quiet: bool, fail_fast: bool,
                      named: dict[str, Any], **options: Any) -> None:
    """Run the batch and report; raise JessGeoError (exit 2) when any scene failed."""
    from jess_geo.distributed.summary import summary_paths
    from jess_geo.inference.batch import predict_many

    given = [k for k in BATCH_ONLY_NOT if named.get(k)]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise InputError(f"{'-o' if given[0] == 'output' else flag} is not available with --output-dir/--workers/--scheduler/--block-size "
                         "(outputs are named <stem>_classes.tif ... in the output folder).")
    if output_dir is None:
        raise InputError("--workers, --scheduler and --block-size write into a folder; pass --output-dir DIR.")
    if block_size is not None and block_size < 1:
        raise InputError(f"--block-size {block_size} is not positive; pass a size in pixels such as 4096.")

    def on_record(rec: Any, prog: Any) -> None:
        if json_progress:
            click.echo(json.dumps({"stage": "scene", **rec.to_json(), "progress": prog.to_json()}))
        if rec.status == "failed":
            click.echo(f"jess-geo: error: {rec.error}", err=True)
        elif not quiet and not json_progress:
            click.echo(_line(rec, prog), err=True)

    records = predict_many(scenes, model, output_dir=output_dir, workers=workers, scheduler=scheduler,
                           threads_per_worker=threads_per_worker, block_size=block_size, vector=not no_vector,
                           layer=layer, fail_fast=fail_fast, on_record=on_record, **options)
    csv_path, json_path = summary_paths(output_dir)
    bad = [r for r in records if not r.ok]
    if json_progress:
        click.echo(json.dumps({"stage": "summary", "scenes": len(records), "failed": len(bad),
                               "summary_csv": str(csv_path), "summary_json": str(json_path)}))
    elif not quiet:
        click.echo(f"Summary: {csv_path} and {json_path}", err=True)
    if bad:
        raise JessGeoError(f"{len(bad)} of {len(records)} scenes failed (listed above and in {csv_path}); the others were written.")
