"""jess_geo.cli"""
