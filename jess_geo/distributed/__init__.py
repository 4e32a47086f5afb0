"""Running predict work on a Dask cluster: the client, per-worker model cache, thread budget.

Dask is an optional extra (``pip install 'jess-geo[dask]'``); nothing here imports it at module
level, so the engine imports without it and a missing package is a one-line InputError.
"""
