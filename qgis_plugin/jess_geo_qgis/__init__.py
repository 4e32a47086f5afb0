"""jess-geo for QGIS: segment rasters with the jess-geo command line, in the background.

The plugin never imports jess-geo, torch or rasterio: it runs the `jess-geo` executable of
a separate Python environment as a child process. Modules ``runner`` and ``environment``
need no QGIS and are importable on their own.
"""


def classFactory(iface):  # noqa: N802 (QGIS's name)
    """Called by QGIS to create the plugin."""
    from .plugin import JessGeoPlugin

    return JessGeoPlugin(iface)
