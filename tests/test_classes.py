"""Class tables read from JSON/YAML: ids, names, colours, channel order and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from jess_geo.classes import IGNORE as IGNORE_INDEX
from jess_geo.classes import ClassTable, color_rgb, load_class_table, parse_color
from jess_geo.io.labels import class_lookup
from jess_geo.errors import InputError


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg.endswith("."), msg
    return msg


def test_sample_table_ids_names_colours(sample_train: dict[str, Path]) -> None:
    table = load_class_table(sample_train["classes"])
    assert table.ids == [0, 1, 2, 3]
    assert table.names == ["bare soil", "cyanobacteria crust", "lichen", "moss"]
    assert table[0].color == "#c9a87c" and table[0].rgb == (0xC9, 0xA8, 0x7C)


def test_real_biocrust_table_loads(biocrust_dir: Path) -> None:
    raw = json.loads((biocrust_dir / "classes.json").read_text())
    table = load_class_table(biocrust_dir / "classes.json")
    assert len(table) >= 2
    for c in table:
        assert c.color.startswith("#") and len(c.color) == 7
    assert len(table) == len(raw.get("classes", raw))


def test_channels_follow_sorted_ids_and_unknown_values_are_flagged(tmp_path: Path) -> None:
    path = tmp_path / "classes.json"
    path.write_text(json.dumps({"4": {"name": "moss", "color": "#3F7A2E"}, "0": "soil", "1": {"name": "crust"}}))
    table = load_class_table(path)
    assert table.ids == [0, 1, 4] and table.names == ["soil", "crust", "moss"]
    assert table[2].color == "#3f7a2e"  # normalised to lower case
    assert all(c.color.startswith("#") for c in table)  # default colours filled in
    lut = class_lookup(table)
    assert lut[0] == 0 and lut[1] == 1 and lut[4] == 2
    assert lut[IGNORE_INDEX] == IGNORE_INDEX
    assert lut[2] < 0 and lut[3] < 0  # not in the table: a label with these values is an error


def test_yaml_list_form_and_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "classes.yaml"
    path.write_text("classes:\n  - {id: 0, name: soil, color: '#c9a87c'}\n  - {id: 2, name: lichen, color: '#e3d55a'}\n")
    table = load_class_table(path)
    assert table.ids == [0, 2]
    again = ClassTable.from_list(json.loads(json.dumps(table.to_list())))
    assert again.to_list() == table.to_list()


@pytest.mark.parametrize(
    "content, name, words",
    [
        ({"0": "soil", "255": "nodata"}, "classes.json", "0-254"),
        ({"0": {"name": "soil", "color": "brown"}}, "classes.json", "#rrggbb"),
        ({"zero": "soil"}, "classes.json", "integer"),
        ({"0": {"colour": "#000000"}}, "classes.json", "name"),
        ([{"id": 1, "name": "a"}, {"id": 1, "name": "b"}], "classes.json", "twice"),
        ({}, "classes.json", "not a class table"),
        ('{"1": "a", "1": "b"}', "classes.json", "twice"),
        ("{not json", "classes.json", "parsed"),
        ("a: [unclosed", "classes.yaml", "parsed"),
    ],
)
def test_bad_tables_are_one_line_input_errors(tmp_path: Path, content: object, name: str, words: str) -> None:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(InputError) as exc:
        load_class_table(path)
    assert words in _one_line(exc)


def test_binary_file_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "classes.json"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    with pytest.raises(InputError) as exc:
        load_class_table(path)
    assert "JSON or YAML" in _one_line(exc)


def test_missing_table_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(InputError) as exc:
        load_class_table(tmp_path / "nope.json")
    assert "--classes" in _one_line(exc)


def test_lookup_maps_mask_values_to_channels() -> None:
    table = ClassTable.from_mapping({"3": "a", "7": "b"})
    lut = class_lookup(table)
    mask = np.array([[3, 7], [255, 3]])
    assert lut[mask].tolist() == [[0, 1], [255, 0]]


# ---------------------------------------------------------------- colours, names, YAML duplicates (issue 10)

@pytest.mark.trust
@pytest.mark.parametrize("value, expected", [("#8C6D4F", "#8c6d4f"), (" #00ff00 ", "#00ff00"), ("#000000", "#000000")])
def test_parse_color_accepts_rrggbb_only(value: str, expected: str) -> None:
    assert parse_color(value) == expected
    assert color_rgb(value) == tuple(int(expected[i:i + 2], 16) for i in (1, 3, 5))


@pytest.mark.trust
@pytest.mark.parametrize("value", ["red", "#fff", "#12345g", "8c6d4f", "#8c6d4f00", "", None, 255, [255, 0, 0]])
def test_parse_color_refuses_everything_else(value: object) -> None:
    with pytest.raises(InputError) as exc:
        parse_color(value)
    assert "#rrggbb" in _one_line(exc)


@pytest.mark.trust
def test_yaml_table_with_an_id_twice_is_refused_like_json(tmp_path: Path) -> None:
    path = tmp_path / "classes.yaml"
    path.write_text("0: soil\n1: moss\n1: lichen\n", encoding="utf-8")  # PyYAML alone keeps 'lichen'
    with pytest.raises(InputError) as exc:
        load_class_table(path)
    assert "lists class id(s) 1 twice" in _one_line(exc)
    nested = tmp_path / "nested.yml"
    nested.write_text("classes:\n  0: {name: soil, color: '#8c6d4f'}\n  0: {name: moss, color: '#2e7d32'}\n", encoding="utf-8")
    with pytest.raises(InputError, match="twice"):
        load_class_table(nested)


@pytest.mark.trust
@pytest.mark.parametrize("name", ["moss\n<qgis>", "soil\t", "a\x00b", "lichen\x1b[31m", "\u0085x"])
def test_class_names_with_control_characters_are_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / "classes.json"
    path.write_text(json.dumps({"0": "soil", "1": {"name": name, "color": "#2e7d32"}}), encoding="utf-8")
    with pytest.raises(InputError) as exc:
        load_class_table(path)
    msg = _one_line(exc)
    assert "class 1" in msg and "control characters" in msg


@pytest.mark.trust
def test_class_table_from_a_list_checks_every_entry() -> None:
    good = [{"id": 0, "name": "soil", "color": "#8C6D4F"}, {"id": 1, "name": "moss", "color": "#2e7d32"}]
    assert ClassTable.from_list(good).to_list()[0]["color"] == "#8c6d4f"
    for bad, words in [
        ([{"id": 300, "name": "soil", "color": "#8c6d4f"}], "0-254"),
        ([{"id": 0, "name": "soil", "color": "brown"}], "#rrggbb"),
        ([{"id": 0, "name": "", "color": "#8c6d4f"}], "name"),
        ([{"id": 0, "name": "soil"}], "id"),
    ]:
        with pytest.raises(InputError) as exc:
            ClassTable.from_list(bad)
        assert words in _one_line(exc)
