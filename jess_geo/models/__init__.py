"""jess_geo.models"""
