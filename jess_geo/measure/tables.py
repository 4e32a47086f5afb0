"""Rows of the CSV tables and the terminal summaries of stats, change and assess (pure)."""

from __future__ import annotations

from typing import Any


def stats_rows(results: list[dict[str, Any]], unit: str) -> tuple[list[str], list[list[Any]]]:
    """One CSV row per zone and class."""
    header = ["zone", "status", "outside_fraction", "nodata_fraction", "class_id", "class_name", "pixels",
              f"area_{unit}", "percent", "patches", f"mean_patch_area_{unit}", f"largest_patch_area_{unit}",
              "edge_length_" + ("m" if unit == "m2" else "px"), "edge_density", "aggregation_index"]
    rows = []
    for z in results:
        for c in z["classes"]:
            rows.append([z["zone"], z["status"], z["outside_fraction"], z["nodata_fraction"], c["id"], c["name"],
                         c["pixels"], c["area"], c["percent"], c["patches"], c["mean_patch_area"],
                         c["largest_patch_area"], c["edge_length"], c["edge_density"], c["aggregation_index"]])
    return header, rows


def adjacency_rows(results: list[dict[str, Any]], unit: str) -> tuple[list[str], list[list[Any]]]:
    """One CSV row per zone and (class, neighbour class) pair."""
    length = "edge_length_" + ("m" if unit == "m2" else "px")
    header = ["zone", "class", "neighbour", length, "share_of_class_edges"]
    rows = []
    for z in results:
        adj = z["adjacency"]
        names = adj["classes"]
        for i, a in enumerate(names):
            for j, b in enumerate(names):
                rows.append([z["zone"], a, b, adj["length"][i][j], adj["normalised"][i][j]])
    return header, rows


def format_stats(results: list[dict[str, Any]], unit: str) -> str:
    """A short terminal table: percent cover per zone and class, zone status."""
    u = "m²" if unit == "m2" else "px²"
    names = [c["name"] for c in results[0]["classes"]] if results else []
    zw = max([4] + [len(str(z["zone"])) for z in results])
    head = f"{'zone':<{zw}}  {'valid ' + u:>14}  {'nodata':>7}  " + "  ".join(f"{n[:12]:>12}" for n in names) + "  status"
    lines = [head]
    for z in results:
        nd = "" if z["nodata_fraction"] is None else f"{100 * z['nodata_fraction']:.1f}%"
        cells = "  ".join(f"{c['percent']:>11.2f}%" for c in z["classes"])
        status = z["status"] + (f" ({100 * z['outside_fraction']:.1f}% outside)" if z["status"] == "partly outside" else "")
        lines.append(f"{z['zone']:<{zw}}  {z['valid_area']:>14.1f}  {nd:>7}  {cells}  {status}")
    return "\n".join(lines)


def transition_rows(summary: dict[str, Any], unit: str) -> tuple[list[str], list[list[Any]]]:
    """One CSV row per (from, to) pair."""
    names = summary["classes"]
    rows = [[a, b, summary["pixels"][i][j], summary["area"][i][j]] for i, a in enumerate(names) for j, b in enumerate(names)]
    return ["from_class", "to_class", "pixels", f"area_{unit}"], rows


def zone_transition_rows(zones: list[dict[str, Any]], unit: str) -> tuple[list[str], list[list[Any]]]:
    """One CSV row per zone and (from, to) pair."""
    rows = []
    for z in zones:
        _, part = transition_rows(z, unit)
        rows += [[z["zone"], *r] for r in part]
    return ["zone", "from_class", "to_class", "pixels", f"area_{unit}"], rows


def change_class_rows(summary: dict[str, Any], unit: str) -> tuple[list[str], list[list[Any]]]:
    """One CSV row per class: area before and after, gain, loss, net change, persistence."""
    keys = ["before", "after", "gain", "loss", "net", "persistence"]
    header = ["class"] + [f"{k}_{unit}" for k in keys] + ["gain_pixels", "loss_pixels"]
    rows = [[r["class"], *[r[k] for k in keys], r["gain_pixels"], r["loss_pixels"]] for r in summary["per_class"]]
    return header, rows


def format_change(summary: dict[str, Any], unit: str) -> str:
    """Terminal table of gain, loss, net and persistence per class."""
    u = "m²" if unit == "m2" else "px²"
    w = max([5] + [len(r["class"]) for r in summary["per_class"]])
    lines = [f"{'class':<{w}}  {'before ' + u:>14}  {'after ' + u:>14}  {'gain':>12}  {'loss':>12}  {'net':>12}  {'persist':>12}"]
    for r in summary["per_class"]:
        lines.append(f"{r['class']:<{w}}  {r['before']:>14.1f}  {r['after']:>14.1f}  {r['gain']:>12.1f}  {r['loss']:>12.1f}  "
                     f"{r['net']:>12.1f}  {r['persistence']:>12.1f}")
    valid = summary["valid_pixels"]
    changed = summary["changed_pixels"]
    lines.append(f"changed pixels {changed} of {valid} ({100 * changed / valid if valid else 0:.2f}%)")
    return "\n".join(lines)


def assess_rows(result: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """One CSV row per class: map area, error-adjusted area with its 95 % half-width, accuracies."""
    u = result["area_unit"]
    header = ["class", "samples", "reference_samples", f"map_area_{u}", "map_percent", f"adjusted_area_{u}",
              f"adjusted_area_ci95_{u}", "adjusted_percent", "adjusted_percent_ci95", "users_accuracy",
              "users_accuracy_ci95", "producers_accuracy", "producers_accuracy_ci95"]
    rows = []
    for c in result["classes"]:
        pct = lambda v: None if v is None else 100.0 * v  # noqa: E731
        rows.append([c["class"], c["samples"], c["reference_samples"], c["map_area"], pct(c["map_proportion"]),
                     c["adjusted_area"], c["adjusted_area_ci95"], pct(c["adjusted_proportion"]),
                     pct(c["adjusted_proportion_ci95"]), c["users_accuracy"], c["users_accuracy_ci95"],
                     c["producers_accuracy"], c["producers_accuracy_ci95"]])
    return header, rows


def confusion_rows(result: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """The error matrix twice: sample counts, then estimated area proportions (rows map, columns reference)."""
    names = [c["class"] for c in result["classes"]]
    rows: list[list[Any]] = []
    for kind, matrix in (("count", result["counts"]), ("area_proportion", result["proportions"])):
        for name, row in zip(names, matrix):
            rows.append([kind, name, *row])
    return ["matrix", "map \\ reference", *names], rows


def _pm(value: Any, ci: Any, scale: float = 1.0, fmt: str = ".2f") -> str:
    if value is None:
        return "n/a"
    return f"{value * scale:{fmt}} ± {ci * scale:{fmt}}" if ci is not None else f"{value * scale:{fmt}} ± n/a"


def format_assess(result: dict[str, Any]) -> str:
    """Map cover vs error-adjusted cover (95 % CI) per class, accuracies, and the units left out."""
    w = max([5] + [len(c["class"]) for c in result["classes"]])
    lines = [f"{'class':<{w}}  {'n':>4}  {'map %':>7}  {'adjusted % (95% CI)':>20}  {'user acc.':>13}  {'producer acc.':>13}"]
    for c in result["classes"]:
        lines.append(f"{c['class']:<{w}}  {c['samples']:>4}  {100 * c['map_proportion']:>7.2f}  "
                     f"{_pm(c['adjusted_proportion'], c['adjusted_proportion_ci95'], 100.0):>20}  "
                     f"{_pm(c['users_accuracy'], c['users_accuracy_ci95']):>13}  {_pm(c['producers_accuracy'], c['producers_accuracy_ci95']):>13}")
    u = result["units"]
    lines.append(f"overall accuracy {_pm(result['overall_accuracy'], result['overall_accuracy_ci95'])}; weights from {result['weights_from']}")
    lines.append(f"reference units: {u['total']} read, {u['used']} used, {u['outside_raster']} outside the raster, "
                 f"{u['on_nodata']} on nodata, {u['unlabelled']} unlabelled")
    if result.get("unsampled_strata"):
        lines.append(f"warning: no usable sample in mapped class(es) {', '.join(result['unsampled_strata'])}: "
                     "their area enters no estimate (overall accuracy and adjusted areas are biased); sample them too")
    if u["map_class_differs_from_sampling"]:
        lines.append(f"warning: {u['map_class_differs_from_sampling']} unit(s) have another map class than when they were sampled")
    return "\n".join(lines)
