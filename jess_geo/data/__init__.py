"""jess_geo.data"""
