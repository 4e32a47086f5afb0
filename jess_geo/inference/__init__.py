"""jess_geo.inference"""
