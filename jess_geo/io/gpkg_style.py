"""A default layer style stored inside a GeoPackage, so QGIS shows class colours on open.

QGIS (and other clients that follow its convention) read styles from a ``layer_styles`` table
in the GeoPackage: one row per style, matched to a layer by ``f_table_name`` and
``f_geometry_column``, the row with ``useAsDefault`` applied when the layer is opened. The style
written here is a categorized renderer on ``class_id``: one fill symbol per class in the class
colour, labelled with the class name. An SLD version of the same style goes in ``styleSLD``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Sequence
from xml.sax.saxutils import escape, quoteattr

from jess_geo.classes import color_rgb

STYLE_TABLE_SQL = """
CREATE TABLE IF NOT EXISTS layer_styles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    f_table_catalog TEXT(256),
    f_table_schema TEXT(256),
    f_table_name TEXT(256),
    f_geometry_column TEXT(256),
    styleName TEXT(30),
    styleQML TEXT,
    styleSLD TEXT,
    useAsDefault BOOLEAN,
    description TEXT,
    owner TEXT(30),
    ui TEXT(30),
    update_time DATETIME DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
)
"""

OUTLINE_RGB = (35, 35, 35)


def _fill_symbol(name: str, rgb: tuple[int, int, int]) -> str:
    """A QGIS simple-fill symbol, written in both the Option (QGIS >= 3.26) and prop forms."""
    props = {
        "color": f"{rgb[0]},{rgb[1]},{rgb[2]},255",
        "outline_color": "{},{},{},255".format(*OUTLINE_RGB),
        "outline_style": "solid",
        "outline_width": "0.1",
        "outline_width_unit": "MM",
        "style": "solid",
        "joinstyle": "bevel",
    }
    options = "".join(f'<Option type="QString" name="{k}" value="{v}"/>' for k, v in props.items())
    legacy = "".join(f'<prop k="{k}" v="{v}"/>' for k, v in props.items())
    return (
        f'<symbol type="fill" name={quoteattr(name)} alpha="1" clip_to_extent="1" force_rhr="0">'
        f'<layer class="SimpleFill" enabled="1" pass="0" locked="0">'
        f'<Option type="Map">{options}</Option>{legacy}</layer></symbol>'
    )


def categorized_qml(classes: Sequence[dict[str, Any]], field: str = "class_id") -> str:
    """QML of a categorized renderer on ``field``: one category per class, in the class colour."""
    cats, syms = [], []
    for i, c in enumerate(classes):
        cats.append(f'<category render="true" symbol="{i}" value="{int(c["id"])}" label={quoteattr(str(c["name"]))}/>')
        syms.append(_fill_symbol(str(i), color_rgb(c["color"])))
    return (
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
        '<qgis version="3.28.0" styleCategories="Symbology">'
        f'<renderer-v2 type="categorizedSymbol" attr={quoteattr(field)} symbollevels="0" '
        'enableorderby="0" forceraster="0" referencescale="-1">'
        f'<categories>{"".join(cats)}</categories>'
        f'<symbols>{"".join(syms)}</symbols>'
        f'<source-symbol>{_fill_symbol("0", (128, 128, 128))}</source-symbol>'
        "<rotation/><sizescale/></renderer-v2>"
        "<blendMode>0</blendMode><featureBlendMode>0</featureBlendMode><layerOpacity>1</layerOpacity>"
        "</qgis>\n"
    )


def categorized_sld(classes: Sequence[dict[str, Any]], layer: str, field: str = "class_id") -> str:
    """The same style as Styled Layer Descriptor 1.1 (one rule per class)."""
    rules = []
    for c in classes:
        r, g, b = color_rgb(c["color"])
        rules.append(
            f"<se:Rule><se:Name>{escape(str(c['name']))}</se:Name>"
            f"<se:Description><se:Title>{escape(str(c['name']))}</se:Title></se:Description>"
            "<ogc:Filter><ogc:PropertyIsEqualTo>"
            f"<ogc:PropertyName>{escape(field)}</ogc:PropertyName><ogc:Literal>{int(c['id'])}</ogc:Literal>"
            "</ogc:PropertyIsEqualTo></ogc:Filter>"
            "<se:PolygonSymbolizer><se:Fill>"
            f'<se:SvgParameter name="fill">#{r:02x}{g:02x}{b:02x}</se:SvgParameter></se:Fill>'
            '<se:Stroke><se:SvgParameter name="stroke">#{:02x}{:02x}{:02x}</se:SvgParameter>'.format(*OUTLINE_RGB)
            + '<se:SvgParameter name="stroke-width">0.1</se:SvgParameter></se:Stroke>'
            "</se:PolygonSymbolizer></se:Rule>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<StyledLayerDescriptor version="1.1.0" xmlns="http://www.opengis.net/sld" '
        'xmlns:se="http://www.opengis.net/se" xmlns:ogc="http://www.opengis.net/ogc" '
        'xmlns:xlink="http://www.w3.org/1999/xlink" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<NamedLayer><se:Name>{escape(layer)}</se:Name><UserStyle><se:Name>{escape(layer)}</se:Name>"
        f"<se:FeatureTypeStyle>{''.join(rules)}</se:FeatureTypeStyle></UserStyle></NamedLayer>"
        "</StyledLayerDescriptor>\n"
    )


def write_layer_style(
    gpkg: str | Path,
    layer: str,
    classes: Sequence[dict[str, Any]],
    *,
    field: str = "class_id",
    style_name: str = "jess-geo classes",
    description: str = "Class colours written by jess-geo",
) -> None:
    """Store the categorized class style in ``gpkg`` as the default style of ``layer``.

    The ``layer_styles`` table is created if needed (and registered in ``gpkg_contents`` as an
    attributes table, as QGIS does); an earlier default style of the same layer is replaced.
    """
    con = sqlite3.connect(str(gpkg))
    try:
        row = con.execute(
            "SELECT column_name FROM gpkg_geometry_columns WHERE lower(table_name) = lower(?)", (layer,)
        ).fetchone()
        geom_col = row[0] if row else "geom"
        with con:
            con.execute(STYLE_TABLE_SQL)
            con.execute(
                "INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier, description, last_change) "
                "VALUES ('layer_styles', 'attributes', 'layer_styles', '', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"
            )
            con.execute(
                "DELETE FROM layer_styles WHERE f_table_name = ? AND f_geometry_column = ? AND styleName = ?",
                (layer, geom_col, style_name),
            )
            con.execute(
                "UPDATE layer_styles SET useAsDefault = 0 WHERE f_table_name = ? AND f_geometry_column = ?",
                (layer, geom_col),
            )
            con.execute(
                "INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, f_geometry_column, "
                "styleName, styleQML, styleSLD, useAsDefault, description, owner, ui) "
                "VALUES ('', '', ?, ?, ?, ?, ?, 1, ?, '', NULL)",
                (
                    layer,
                    geom_col,
                    style_name,
                    categorized_qml(classes, field),
                    categorized_sld(classes, layer, field),
                    description,
                ),
            )
    finally:
        con.close()
