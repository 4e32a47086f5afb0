"""jess_geo.training"""
