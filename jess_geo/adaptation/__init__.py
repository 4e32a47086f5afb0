"""Adapting a model file to a new camera or season: one module per method, one dispatcher.

Methods: ``jess`` (fine-tuning with the energy term, :mod:`jess_geo.training.adapt`), ``adabn``
(BatchNorm statistics of the target), ``tent`` (entropy minimisation of the BatchNorm affine
parameters), ``histmatch`` (per-band histogram matching of the target scenes toward the source,
applied by predict), ``fewshot`` (fine-tuning on a few partly labelled target images) and
``camsim`` (fine-tuning on the labelled source images rendered with the target camera's colours,
blur and noise, measured on the unlabelled target images).

This package's ``__init__`` imports nothing heavy: the predict path imports
:mod:`jess_geo.adaptation.colour` (numpy only) to apply a stored colour alignment.
"""

from __future__ import annotations

from typing import Any

METHODS = ("jess", "adabn", "tent", "histmatch", "fewshot", "camsim")
# The default of `jess-geo adapt --method`: the best method in benchmarks/adapt_toolbox.py that needs
# only the model file and the new images (positive on both shifts, no training). camsim gained more
# on both shifts but needs the labelled source data, which a user given only a model lacks.
DEFAULT_METHOD = "adabn"

__all__ = ["DEFAULT_METHOD", "METHODS", "adapt"]


def adapt(method: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run one method's ``adapt_<method>(*args, **kwargs)`` (see each module); ``jess`` is
    :func:`jess_geo.training.adapt.run_adaptation`."""
    from jess_geo.adaptation.run import method_function

    return method_function(method)(*args, **kwargs)
