"""jess-geo: segmentation of ground cover in rasters and photos, with JESS domain adaptation."""

__version__ = "0.1.0"
