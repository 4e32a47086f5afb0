"""Accuracy and area estimates from a stratified random sample (Olofsson et al. 2014).

Olofsson, P., Foody, G. M., Herold, M., Stehman, S. V., Woodcock, C. E., Wulder, M. A. (2014):
Good practices for estimating area and assessing accuracy of land change. Remote Sensing of
Environment 148, 42-57. The strata are the map classes; ``n[i][j]`` counts sample units mapped
as class i whose reference class is j; ``W_i`` is the share of the mapped area in class i.

- estimated area proportions ``p_ij = W_i n_ij / n_i.`` (eq. 4);
- overall accuracy ``O = sum_j p_jj``, user's ``U_i = p_ii / p_i.``, producer's
  ``P_j = p_jj / p_.j`` (eqs. 1-3), variances eqs. 5-7;
- error-adjusted area of class j ``A p_.j`` with standard error
  ``A sqrt(sum_i W_i^2 (n_ij/n_i.)(1 - n_ij/n_i.) / (n_i. - 1))`` (eqs. 9-10);
- 95 % confidence intervals: estimate +- 1.96 SE.

A stratum with fewer than two sample units has no variance estimate: its terms make the
intervals it enters undefined (NaN), never silently zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

Z95 = 1.96


@dataclass(frozen=True)
class StratifiedEstimate:
    """Estimates of one error matrix; arrays are per class (map class i / reference class j)."""

    counts: np.ndarray  # n_ij
    weights: np.ndarray  # W_i
    total_area: float
    proportions: np.ndarray  # p_ij
    overall: float
    overall_se: float
    users: np.ndarray
    users_se: np.ndarray
    producers: np.ndarray
    producers_se: np.ndarray
    area: np.ndarray  # error-adjusted area per class
    area_se: np.ndarray

    def ci(self, se: Any) -> Any:
        """Half-width of the 95 % confidence interval of a standard error."""
        return Z95 * se

    def to_dict(self, names: Sequence[str]) -> dict[str, Any]:
        """JSON-able estimates with 95 % half-widths, per class and overall."""
        mapped = self.weights * self.total_area
        classes = []
        for i, name in enumerate(names):
            classes.append({
                "class": name, "map_area": float(mapped[i]), "map_proportion": float(self.weights[i]),
                "samples": int(self.counts[i].sum()), "reference_samples": int(self.counts[:, i].sum()),
                "users_accuracy": _num(self.users[i]), "users_accuracy_ci95": _num(Z95 * self.users_se[i]),
                "producers_accuracy": _num(self.producers[i]), "producers_accuracy_ci95": _num(Z95 * self.producers_se[i]),
                "adjusted_area": float(self.area[i]), "adjusted_area_ci95": _num(Z95 * self.area_se[i]),
                "adjusted_proportion": float(self.area[i] / self.total_area) if self.total_area else None,
                "adjusted_proportion_ci95": _num(Z95 * self.area_se[i] / self.total_area) if self.total_area else None,
            })
        return {"overall_accuracy": _num(self.overall), "overall_accuracy_ci95": _num(Z95 * self.overall_se),
                "total_area": self.total_area, "counts": self.counts.astype(int).tolist(),
                "proportions": self.proportions.tolist(), "classes": classes}


def _num(x: float) -> float | None:
    x = float(x)
    return None if np.isnan(x) else x


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.divide(a, b, out=np.full(np.broadcast(a, b).shape, np.nan), where=b != 0)


def stratified_estimate(counts: Any, stratum_areas: Any) -> StratifiedEstimate:
    """Olofsson et al. (2014) estimators from an error matrix of sample counts and the mapped
    area of each stratum (map class), in any unit (pixels, m², ha)."""
    n = np.asarray(counts, dtype=float)
    mapped = np.asarray(stratum_areas, dtype=float)
    if n.ndim != 2 or n.shape[0] != n.shape[1] or n.shape[0] != mapped.shape[0]:
        raise ValueError(f"counts must be K x K and stratum_areas K long (got {n.shape} and {mapped.shape})")
    total = float(mapped.sum())
    w = mapped / total if total > 0 else np.zeros_like(mapped)
    ni = n.sum(axis=1)
    share = _div(n, ni[:, None])  # n_ij / n_i.
    share = np.where(ni[:, None] > 0, share, 0.0)
    p = w[:, None] * share
    diag = np.diag(p)
    pj = p.sum(axis=0)
    users = _div(np.diag(n), ni)
    producers = _div(diag, pj)
    overall = float(diag.sum())
    dof = np.where(ni > 1, ni - 1, np.nan)  # n_i. - 1; undefined for strata of < 2 samples
    sampled = ni > 0
    var_terms = share * (1 - share) / dof[:, None]  # per stratum i and class j
    var_terms = np.where(sampled[:, None] | (w[:, None] == 0), var_terms, np.nan)
    var_terms = np.where(w[:, None] == 0, 0.0, var_terms)
    area_se = total * np.sqrt((w[:, None] ** 2 * var_terms).sum(axis=0))
    users_se = np.sqrt(users * (1 - users) / dof)
    overall_se = float(np.sqrt(np.nansum(w**2 * users * (1 - users) / dof) if np.all(np.isfinite(dof[w > 0])) else np.nan))
    producers_se = _producers_se(n, mapped, ni, users, producers, dof)
    return StratifiedEstimate(counts=n, weights=w, total_area=total, proportions=p, overall=overall,
                              overall_se=overall_se, users=users, users_se=users_se, producers=producers,
                              producers_se=producers_se, area=pj * total, area_se=area_se)


def _producers_se(n: np.ndarray, mapped: np.ndarray, ni: np.ndarray, users: np.ndarray, producers: np.ndarray,
                  dof: np.ndarray) -> np.ndarray:
    """Standard error of producer's accuracy (Olofsson et al. 2014, eq. 7)."""
    k = len(mapped)
    share = np.where(ni[:, None] > 0, _div(n, ni[:, None]), 0.0)
    n_hat = (mapped[:, None] * share).sum(axis=0)  # estimated reference total of class j
    out = np.full(k, np.nan)
    for j in range(k):
        if n_hat[j] <= 0 or not np.isfinite(producers[j]):
            continue
        first = mapped[j] ** 2 * (1 - producers[j]) ** 2 * users[j] * (1 - users[j]) / dof[j] if mapped[j] > 0 else 0.0
        others = [mapped[i] ** 2 * share[i, j] * (1 - share[i, j]) / dof[i] for i in range(k) if i != j and mapped[i] > 0]
        out[j] = np.sqrt((first + producers[j] ** 2 * float(np.sum(others))) / n_hat[j] ** 2)
    return out
