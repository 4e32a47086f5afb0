"""jess_geo.io"""
