"""Measurements from class rasters: cover per zone, landscape metrics, change, accuracy.

Every function reads the class raster in row strips (flat memory on 100-megapixel rasters) and
keeps I/O (``grid``, ``zones``, ``outputs``) apart from the arithmetic (``landscape``,
``accuracy``, ``transitions``). No torch, no QGIS.

- :mod:`grid`: open a class raster with its class table, strips, pixel areas and edge lengths;
- :mod:`landscape`: per-class counts, areas, patches, edges, adjacency (one streaming pass);
- :mod:`zones`: zones from a vector file, their windows and pixel masks;
- :mod:`stats`: cover and landscape metrics per zone or for the whole raster;
- :mod:`change`: transition matrix, gain/loss, change raster and polygons between two dates;
- :mod:`sampling`: stratified random sample points and the stored sampling design;
- :mod:`accuracy`: Olofsson et al. (2014) stratified estimators of accuracy and area;
- :mod:`assess`: reference points against a map, through :mod:`accuracy`.
"""
