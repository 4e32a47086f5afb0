"""The self-describing model file: round trip, half precision, and refusing anything but plain data."""

from __future__ import annotations

import collections
import json
import pickle
from pathlib import Path

import pytest
import torch

from jess_geo.errors import ModelFileError
from jess_geo.models.factory import architecture_dict, build_model
from jess_geo.models.modelfile import FORMAT, load_model_file, read_metadata, save_model_file

CLASSES = [
    {"id": 0, "name": "soil", "color": "#c9a87c"},
    {"id": 1, "name": "crust", "color": "#5b4a3f"},
    {"id": 4, "name": "moss", "color": "#3f7a2e"},
]


def _metadata(bands: int = 3) -> dict:
    return {
        "architecture": architecture_dict("timm-tf_efficientnet_lite0", bands, len(CLASSES), (16, 16, 16, 16, 16)),
        "bands": list(range(1, bands + 1)),
        "normalization": {"mean": [101.5, 99.0, 80.25][:bands], "std": [30.0, 31.0, 29.5][:bands]},
        "classes": CLASSES,
        "resolution": {"gsd": None, "photo_scale": 0.5},
        "tile_size": 256,
        "overlap": 32,
        "training": {"epochs": 1, "seed": 0},
        "metrics": {"val_accuracy": 0.5},
        "provenance": {"train_images": ["a.tif"]},
        "adaptation": None,
    }


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(_metadata()["architecture"])
    # Non-trivial BatchNorm statistics, so a lost buffer would show in the outputs.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory, net: torch.nn.Module) -> Path:
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_model_file(path, net, _metadata())
    return path


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg.endswith("."), msg
    return msg


def test_round_trip_gives_the_same_outputs(saved: Path, net: torch.nn.Module) -> None:
    loaded = load_model_file(saved)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded.model(x), net(x))
    assert not loaded.model.training
    meta = loaded.metadata
    for key, value in _metadata().items():
        assert meta[key] == value, key
    assert meta["ignore_index"] == 255 and "jess_geo_version" in meta
    assert read_metadata(saved) == meta
    assert [p.name for p in saved.parent.iterdir()] == ["model.pt"]  # no temporary left behind


def test_plain_torch_load_with_weights_only(saved: Path) -> None:
    payload = torch.load(saved, map_location="cpu", weights_only=True)
    assert payload["format"] == FORMAT and payload["format_version"] == 1
    assert isinstance(payload["metadata"], str) and json.loads(payload["metadata"])["bands"] == [1, 2, 3]
    assert all(isinstance(v, torch.Tensor) for v in payload["state_dict"].values())


def test_half_precision_is_smaller_and_loads_as_float32(tmp_path: Path, saved: Path, net: torch.nn.Module) -> None:
    half = tmp_path / "half.pt"
    save_model_file(half, net, _metadata(), half=True)
    assert half.stat().st_size < 0.6 * saved.stat().st_size
    stored = torch.load(half, map_location="cpu", weights_only=True)["state_dict"]
    assert {v.dtype for v in stored.values() if v.is_floating_point()} == {torch.float16}
    loaded = load_model_file(half)
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a, b = loaded.model(x), net(x)
    assert (a.argmax(1) == b.argmax(1)).float().mean() > 0.98
    assert torch.allclose(a, b, atol=0.05 * float(b.abs().max()))


def test_saving_without_required_metadata_is_refused(tmp_path: Path, net: torch.nn.Module) -> None:
    meta = _metadata()
    del meta["normalization"]
    with pytest.raises(ValueError):
        save_model_file(tmp_path / "m.pt", net, meta)
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize("keep", [0, 10, 100, 0.5, 0.9])
def test_truncated_file_is_refused(tmp_path: Path, saved: Path, keep: float) -> None:
    data = saved.read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else keep
    bad = tmp_path / "cut.pt"
    bad.write_bytes(data[:n])
    with pytest.raises(ModelFileError) as exc:
        load_model_file(bad)
    with pytest.raises(ModelFileError):
        read_metadata(bad)
    assert "cut.pt" in _one_line(exc)


class _Marker:
    """Unpickling this would create a file: proof of whether anything was executed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (str(self.path), "w"))


class _Weights(collections.OrderedDict):
    """An OrderedDict subclass: looks like a state dict, but unpickling it imports this module."""


def _refused(path: Path) -> str:
    with pytest.raises(ModelFileError) as exc:
        load_model_file(path)
    with pytest.raises(ModelFileError):
        read_metadata(path)
    return _one_line(exc)


def test_pickled_object_is_refused_and_never_executed(tmp_path: Path, saved: Path) -> None:
    marker = tmp_path / "executed"
    payload = torch.load(saved, map_location="cpu", weights_only=True)
    payload["extra"] = _Marker(marker)
    evil = tmp_path / "evil.pt"
    torch.save(payload, evil)
    assert not marker.exists()
    msg = _refused(evil)
    assert "refused" in msg and "pickled" in msg
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError):  # the marker really is armed
        torch.load(evil, weights_only=True)
    torch.load(evil, weights_only=False)
    assert marker.exists()


def test_marker_inside_metadata_position_is_refused(tmp_path: Path, saved: Path) -> None:
    marker = tmp_path / "executed"
    payload = torch.load(saved, map_location="cpu", weights_only=True)
    payload["metadata"] = _Marker(marker)
    torch.save(payload, tmp_path / "evil.pt")
    _refused(tmp_path / "evil.pt")
    assert not marker.exists()


def test_ordered_dict_subclass_state_dict_is_refused(tmp_path: Path, saved: Path) -> None:
    payload = torch.load(saved, map_location="cpu", weights_only=True)
    payload["state_dict"] = _Weights(payload["state_dict"])
    torch.save(payload, tmp_path / "sub.pt")
    assert "pickled" in _refused(tmp_path / "sub.pt")
    # A plain OrderedDict (what model.state_dict() returns) is data and loads.
    payload["state_dict"] = collections.OrderedDict(payload["state_dict"])
    torch.save(payload, tmp_path / "plain.pt")
    assert load_model_file(tmp_path / "plain.pt").metadata["bands"] == [1, 2, 3]


def test_plain_pickle_file_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    with open(tmp_path / "legacy.pt", "wb") as f:
        pickle.dump({"format": FORMAT, "x": _Marker(marker)}, f)
    _refused(tmp_path / "legacy.pt")
    assert not marker.exists()


def test_other_files_are_refused(tmp_path: Path, net: torch.nn.Module) -> None:
    torch.save(net.state_dict(), tmp_path / "weights.pt")  # a bare state dict: not a jess-geo model
    assert "not a jess-geo model" in _refused(tmp_path / "weights.pt")
    (tmp_path / "text.pt").write_text("hello")
    _refused(tmp_path / "text.pt")
    assert "does not exist" in _refused(tmp_path / "missing.pt")
    with pytest.raises(ModelFileError):
        load_model_file(tmp_path)  # a folder


def test_metadata_problems_are_refused(tmp_path: Path, saved: Path) -> None:
    payload = torch.load(saved, map_location="cpu", weights_only=True)
    meta = json.loads(payload["metadata"])
    for name, change in {
        "nometa.pt": lambda p: p.update(metadata="{not json"),
        "lacks.pt": lambda p: p.update(metadata=json.dumps({k: v for k, v in meta.items() if k != "bands"})),
        "future.pt": lambda p: p.update(format_version=99),
        "noweights.pt": lambda p: p.pop("state_dict"),
    }.items():
        copy = dict(payload)
        change(copy)
        torch.save(copy, tmp_path / name)
        with pytest.raises(ModelFileError) as exc:
            load_model_file(tmp_path / name)
        assert name in _one_line(exc)
    # Weights that do not fit the described network: the metadata still reads, loading refuses.
    wrong = dict(payload, metadata=json.dumps(dict(meta, architecture=dict(meta["architecture"], decoder_channels=[32, 16, 16, 16, 16]))))
    torch.save(wrong, tmp_path / "shapes.pt")
    assert read_metadata(tmp_path / "shapes.pt")["architecture"]["decoder_channels"][0] == 32
    with pytest.raises(ModelFileError) as exc:
        load_model_file(tmp_path / "shapes.pt")
    assert "do not fit" in _one_line(exc)


# ---------------------------------------------------------------- metadata checked field by field (issue 10)

def _without(d: dict, key: str) -> dict:
    return {k: v for k, v in d.items() if k != key}


BAD_METADATA = {
    # case: (change to the metadata, words the one-line message must hold)
    "no encoder": (lambda m: m.update(architecture=_without(m["architecture"], "encoder")), "architecture.encoder is missing"),
    "colour red": (lambda m: m["classes"][1].update(color="red"), "classes[1].color 'red' is not a colour written as \"#rrggbb\""),
    "colour #rgb": (lambda m: m["classes"][0].update(color="#fff"), "classes[0].color '#fff'"),
    "class id 300": (lambda m: m["classes"][2].update(id=300), "classes[2].id is 300, outside 0-254"),
    "class id 255": (lambda m: m["classes"][2].update(id=255), "classes[2].id is 255, outside 0-254"),
    "class id text": (lambda m: m["classes"][0].update(id="0"), "classes[0].id must be a whole number, not text '0'"),
    "duplicate ids": (lambda m: m["classes"][1].update(id=0), "classes lists id 0 twice"),
    "control characters": (lambda m: m["classes"][0].update(name="soil\n<qgis>"), "classes[0].name 'soil\\n<qgis>' contains control characters"),
    "empty name": (lambda m: m["classes"][0].update(name="  "), "classes[0].name '  ' must be non-empty text"),
    "bands string": (lambda m: m.update(bands="1,2,3"), "bands must be a list of band numbers such as [1, 2, 3], not text '1,2,3'"),
    "band zero": (lambda m: m.update(bands=[0, 1, 2]), "bands[0] is 0, outside 1 or more"),
    "bands count": (lambda m: m.update(bands=[1, 2]), "bands lists 2 bands but the network takes 3"),
    "std zero": (lambda m: m["normalization"].update(std=[30.0, 0.0, 29.5]), "normalization.std[1] is 0.0, not a positive number"),
    "std nan": (lambda m: m["normalization"].update(std=[30.0, float("nan"), 29.5]), "normalization.std[1] is nan, not a finite number"),
    "mean inf": (lambda m: m["normalization"].update(mean=[float("inf"), 1.0, 1.0]), "normalization.mean[0] is inf, not a finite number"),
    "mean string": (lambda m: m["normalization"].update(mean="100"), "normalization.mean must be a list of 3 numbers, not text '100'"),
    "std short": (lambda m: m["normalization"].update(std=[1.0]), "normalization.std has 1 values but the network has 3 input bands"),
    "in_channels text": (lambda m: m["architecture"].update(in_channels="3"), "architecture.in_channels must be a whole number, not text '3'"),
    "classes count": (lambda m: m["architecture"].update(num_classes=5), "classes lists 3 classes but the network outputs 5"),
    "tile_size float": (lambda m: m.update(tile_size=256.5), "tile_size must be a whole number, not float 256.5"),
    "overlap bool": (lambda m: m.update(overlap=True), "overlap must be a whole number, not true/false True"),
    "overlap too big": (lambda m: m.update(overlap=256), "overlap is 256, not less than tile_size 256"),
    "gsd negative": (lambda m: m.update(resolution={"gsd": -0.02, "photo_scale": 0.5}), "resolution.gsd is -0.02, not a positive number"),
    "resolution list": (lambda m: m.update(resolution=[0.02]), "resolution must be an object, not a list"),
    "decoder int": (lambda m: m["architecture"].update(decoder_channels=16), "architecture.decoder_channels must be a list of channel counts, not int 16"),
}


@pytest.mark.trust
@pytest.mark.parametrize("case", sorted(BAD_METADATA))
def test_malformed_metadata_is_one_line_naming_the_field(tmp_path: Path, saved: Path, case: str) -> None:
    change, words = BAD_METADATA[case]
    payload = torch.load(saved, map_location="cpu", weights_only=True)
    meta = json.loads(payload["metadata"])
    change(meta)
    bad = tmp_path / "edited.pt"
    torch.save(dict(payload, metadata=json.dumps(meta)), bad)  # json writes NaN/Infinity, as a hand edit could
    for read in (read_metadata, load_model_file):
        with pytest.raises(ModelFileError) as exc:
            read(bad)
        msg = _one_line(exc)
        assert msg.startswith(f"Model file {bad}: metadata field "), msg
        assert words in msg, msg


@pytest.mark.trust
def test_malformed_metadata_is_never_saved(tmp_path: Path, net: torch.nn.Module) -> None:
    meta = _metadata()
    meta["classes"] = [dict(c) for c in CLASSES]
    meta["classes"][0]["color"] = "brown"
    with pytest.raises(ModelFileError, match="classes.0..color 'brown'"):
        save_model_file(tmp_path / "m.pt", net, meta)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.trust
@pytest.mark.parametrize("case", ["no encoder", "colour red", "class id 300", "bands string", "std zero"])
def test_cli_refuses_malformed_model_in_one_line(tmp_path: Path, saved: Path, case: str, run_cli, assert_cli_error) -> None:
    change, words = BAD_METADATA[case]
    payload = torch.load(saved, map_location="cpu", weights_only=True)
    meta = json.loads(payload["metadata"])
    change(meta)
    torch.save(dict(payload, metadata=json.dumps(meta)), tmp_path / "edited.pt")
    proc = run_cli("info", "edited.pt", cwd=tmp_path)
    assert words in assert_cli_error(proc)
    assert proc.stdout == ""


@pytest.mark.trust
def test_onnx_model_metadata_goes_through_the_same_checks(tmp_path: Path) -> None:
    onnx_meta = pytest.importorskip("jess_geo.export.onnx_meta")
    onnx = pytest.importorskip("onnx")
    meta = dict(_metadata(), classes=[dict(c) for c in CLASSES])
    meta["classes"][1]["color"] = "red"
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g",
                                   [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    model = onnx.helper.make_model(graph)
    onnx.helper.set_model_props(model, {onnx_meta.META_KEY: json.dumps(meta)})
    onnx.save(model, str(tmp_path / "m.onnx"))
    with pytest.raises(ModelFileError) as exc:
        read_metadata(tmp_path / "m.onnx")
    assert "classes[1].color 'red'" in _one_line(exc)
    meta["classes"][1]["color"] = "#5b4a3f"
    onnx.helper.set_model_props(model, {onnx_meta.META_KEY: json.dumps(meta)})
    onnx.save(model, str(tmp_path / "m.onnx"))
    assert read_metadata(tmp_path / "m.onnx")["classes"][1]["color"] == "#5b4a3f"
