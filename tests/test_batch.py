"""Issue 14, many scenes: a real Dask LocalCluster (2 worker processes) predicts 4 scenes, one corrupt.

What a user sees: the 3 good scenes' outputs equal single-process runs pixel for pixel, the corrupt
one is one clean line in the run summary and on stderr, the exit code says a scene failed, a rerun
skips the finished scenes, and every worker opened the model once.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

pytest.importorskip("distributed")

from jess_geo.models.modelfile import bundled_demo_model  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "scene.tif"


def _scenes(folder: Path) -> list[Path]:
    """Three different real scenes (the sample scene turned and mirrored) and a corrupt GeoTIFF."""
    folder.mkdir()
    with rasterio.open(SAMPLE) as src:
        data, profile = src.read(), src.profile
    paths = []
    for i, arr in enumerate([data, data[:, ::-1, ::-1], data[:, :, ::-1]]):
        p = folder / f"plot_{i}.tif"
        with rasterio.open(p, "w", **profile) as dst:
            dst.write(np.ascontiguousarray(arr))
        paths.append(p)
    bad = folder / "plot_bad.tif"
    bad.write_bytes(b"II*\x00" + bytes(100))  # a TIFF header and nothing else
    return paths + [bad]


def _pixels(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def _summary(folder: Path) -> list[dict[str, str]]:
    with open(folder / "predict_summary.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One cluster run (the expensive part), shared by the assertions below."""
    from jess_geo.distributed.cluster import open_client
    from jess_geo.distributed.worker import loads
    from jess_geo.inference.batch import predict_many

    root = tmp_path_factory.mktemp("batch")
    scenes = _scenes(root / "scenes")
    seen: list[tuple[str, str, int]] = []
    with open_client(workers=2, threads_per_worker=1) as client:
        records = predict_many(scenes, bundled_demo_model(), output_dir=root / "out", client=client, threads_per_worker=1,
                               device="cpu", on_record=lambda r, p: seen.append((r.scene, r.status, p.done)))
        worker_loads = list(client.run(loads).values())
    return {"root": root, "scenes": scenes, "records": records, "seen": seen, "loads": worker_loads}


@pytest.mark.slow  # one LocalCluster start and 3 scenes: ~190 s on this shared 2-core machine
def test_cluster_outputs_equal_single_process_runs(batch: dict, tmp_path: Path) -> None:
    from jess_geo.inference.predict import predict_raster

    out = batch["root"] / "out"
    for scene in batch["scenes"][:3]:
        ref = tmp_path / f"{scene.stem}_classes.tif"
        predict_raster(scene, bundled_demo_model(), ref, device="cpu")
        got = out / f"{scene.stem}_classes.tif"
        np.testing.assert_array_equal(_pixels(got), _pixels(ref))
        mine = json.loads((out / f"{scene.stem}_cover.json").read_text())
        theirs = json.loads((tmp_path / f"{scene.stem}_cover.json").read_text())
        assert mine == theirs  # same pixels, areas, source and model name
        assert (out / f"{scene.stem}_classes.gpkg").is_file()


@pytest.mark.slow  # one LocalCluster start and 3 scenes: ~190 s on this shared 2-core machine
def test_corrupt_scene_is_one_clean_row_and_the_others_finish(batch: dict) -> None:
    statuses = {Path(r.scene).name: r.status for r in batch["records"]}
    assert statuses == {"plot_0.tif": "done", "plot_1.tif": "done", "plot_2.tif": "done", "plot_bad.tif": "failed"}
    rows = {Path(r["scene"]).name: r for r in _summary(batch["root"] / "out")}
    bad = rows["plot_bad.tif"]
    assert bad["status"] == "failed" and "is not a readable raster" in bad["error"] and "\n" not in bad["error"]
    assert "Traceback" not in bad["error"]
    good = rows["plot_0.tif"]
    assert int(good["tiles"]) == 2 and int(good["valid_pixels"]) > 0
    assert abs(sum(float(good[k]) for k in good if k.startswith("percent_")) - 100.0) < 0.01
    assert not list((batch["root"] / "out").glob("plot_bad*")) and not list((batch["root"] / "out").glob(".*"))
    summary = json.loads((batch["root"] / "out" / "predict_summary.json").read_text())
    assert (summary["done"], summary["failed"]) == (3, 1)


@pytest.mark.slow  # one LocalCluster start and 3 scenes: ~190 s on this shared 2-core machine
def test_results_stream_back_and_each_worker_loads_the_model_once(batch: dict) -> None:
    assert [d for _, _, d in batch["seen"]] == [1, 2, 3, 4]
    assert sorted(batch["loads"]) in ([1, 1], [0, 1])  # each worker opened the network at most once for its scenes


@pytest.mark.slow  # one LocalCluster start and 3 scenes: ~190 s on this shared 2-core machine
def test_rerun_skips_finished_scenes_and_exits_non_zero(batch: dict, run_cli) -> None:  # type: ignore[no-untyped-def]
    out = batch["root"] / "out"
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("plot_*")}
    res = run_cli("predict", *batch["scenes"], "--output-dir", out, "--device", "cpu")
    assert res.exit_code == 2
    assert "skipped (outputs exist; --overwrite redoes it)" in res.stderr
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("jess-geo: error:")]
    assert len(errors) == 2 and "plot_bad.tif is not a readable raster" in errors[0]
    assert "1 of 4 scenes failed" in errors[1]
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("plot_*")} == before
    assert [r["status"] for r in _summary(out)] == ["skipped", "skipped", "skipped", "failed"]


def test_unreachable_scheduler_is_one_line_and_writes_nothing(tmp_path: Path, run_cli, assert_cli_error) -> None:  # type: ignore[no-untyped-def]
    res = run_cli("predict", SAMPLE, "--output-dir", tmp_path / "o", "--scheduler", "tcp://127.0.0.1:9")
    msg = assert_cli_error(res)
    assert msg.startswith("Cannot reach the Dask scheduler at tcp://127.0.0.1:9")
    assert not (tmp_path / "o").exists()


def test_batch_options_are_checked_in_one_line(tmp_path: Path, run_cli, assert_cli_error) -> None:  # type: ignore[no-untyped-def]
    assert "pass --output-dir DIR" in assert_cli_error(run_cli("predict", SAMPLE, "--workers", "2"))
    assert "-o is not available" in assert_cli_error(run_cli("predict", SAMPLE, "--output-dir", tmp_path, "-o", tmp_path / "x.tif"))
    assert "--workers 0 is not positive" in assert_cli_error(run_cli("predict", SAMPLE, "--output-dir", tmp_path, "--workers", "0"))


@pytest.mark.slow  # 3 pipeline runs of the sample scene: ~100 s on this shared machine
def test_in_process_batch_fail_fast_and_overwrite(tmp_path: Path) -> None:
    """Without a cluster the same records and summary; --fail-fast leaves later scenes 'not run'."""
    from jess_geo.inference.batch import predict_many

    bad = tmp_path / "a_bad.tif"
    bad.write_bytes(b"II*\x00" + bytes(100))
    out = tmp_path / "out"
    recs = predict_many([bad, SAMPLE], bundled_demo_model(), output_dir=out, fail_fast=True, device="cpu", vector=False)
    assert [r.status for r in recs] == ["failed", "not run"]
    assert not (out / "scene_classes.tif").exists()
    recs = predict_many([SAMPLE], bundled_demo_model(), output_dir=out, device="cpu", vector=False)
    assert recs[0].status == "done" and recs[0].tiles == 2 and recs[0].worker is None
    first = (out / "scene_classes.tif").stat().st_mtime_ns
    assert predict_many([SAMPLE], bundled_demo_model(), output_dir=out, device="cpu", vector=False)[0].status == "skipped"
    again = predict_many([SAMPLE], bundled_demo_model(), output_dir=out, device="cpu", vector=False, overwrite=True)
    assert again[0].status == "done" and (out / "scene_classes.tif").stat().st_mtime_ns != first
    summary = json.loads((out / "predict_summary.json").read_text())
    assert summary["records"][0]["cover"] == again[0].cover and abs(sum(again[0].cover.values()) - 100) < 0.01
