"""predict's shift notice: the feature statistics of the first batches a scene sends through the network.

No second pass: forward pre-hooks on a few BatchNorm layers of the torch runtime's network record
the first :data:`BATCHES` batches of the tiles ``predict`` runs anyway, then do nothing. After
the scene, :meth:`ShiftWatch.result` scores them against the model's ``feature_stats`` (or its
BatchNorm running statistics) and returns a one-line notice when the score is above
the threshold of :func:`jess_geo.shift.stats.threshold_for`. ONNX Runtime and OpenVINO expose no layers: no notice
there (`jess-geo check` with the .pt model scores such scenes).
"""

from __future__ import annotations

from typing import Any

__all__ = ["BATCHES", "ShiftWatch", "shift_watch"]

BATCHES = 4


class ShiftWatch:
    """``with ShiftWatch(rt, reference) as w:`` hooks on the torch runtime's network while one scene
    runs (nothing for other runtimes); :meth:`result` scores the batches it saw."""

    def __init__(self, rt: Any, reference: dict[str, Any] | None, batches: int = BATCHES) -> None:
        net = getattr(rt, "net", None)
        self.net = net if getattr(rt, "name", "") == "torch" else None
        self.reference = reference
        self.batches = batches
        self.collector: Any = None  # jess_geo.shift.stats.FeatureCollector (torch is imported only for torch)

    def __enter__(self) -> "ShiftWatch":
        if self.net is not None:
            from jess_geo.shift.stats import FeatureCollector

            self.collector = FeatureCollector(self.net, limit=self.batches).__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.collector is not None:
            self.collector.remove()

    def result(self, scene: str) -> dict[str, Any] | None:
        """``{"score", "threshold", "batches", "reference", "notice"}`` (notice None at or below the
        threshold); None for other runtimes or when no batch ran."""
        fc = self.collector
        if fc is None or fc.batches == 0:
            return None
        from jess_geo.shift.stats import DEFAULT_METRIC, running_statistics, shift_score, threshold_for

        ref, origin = (self.reference, "stored") if self.reference else (running_statistics(self.net), "fallback")
        score = shift_score(ref, fc.statistics(), DEFAULT_METRIC)
        limit = threshold_for(origin)
        notice = None
        if score > limit:
            notice = (f"{scene} looks unlike the model's training data (shift score {score:.2f} > {limit:g} "
                      f"on the first {fc.batches} batch{'es' if fc.batches != 1 else ''}): a new camera or season? "
                      "Run `jess-geo check MODEL SCENE`, and `jess-geo adapt` if it says so.")
        return {"score": round(score, 4), "threshold": limit, "batches": fc.batches, "reference": origin, "notice": notice}


def shift_watch(rt: Any, reference: dict[str, Any] | None) -> ShiftWatch:
    """A :class:`ShiftWatch` on ``rt`` (use it as a context manager around one scene's run)."""
    return ShiftWatch(rt, reference)
