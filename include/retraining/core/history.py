"""The monitoring history as a picture: per drift check, each column's p-value against the per-column
threshold and the verdict; the champion's metric on new labels with its bootstrap interval; the versions
registered (retrains) and the champion changes (promotions) marked on the same dates.

Pure: drift-check documents (as stored by ``stages.data.drift_check_document``) and the registered
versions in, PNG bytes out. Matplotlib renders off-screen (Agg).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from include.retraining.core.drift import P_VALUE_METHODS

P_FLOOR = 1e-12  # a p-value of 0 (or below this) is drawn here: a log axis has no 0
VERDICT_STYLE = {  # status -> (label in the verdict strip, colour)
    "drift": ("data drift", "tab:red"),
    "no_drift": ("no drift", "tab:green"),
    "no_new_data": ("too few new rows", "tab:gray"),
    "no_reference": ("no champion", "tab:gray"),
}
PERFORMANCE_STYLE = {
    "no_drift": ("champion as expected", "tab:blue"),
    "drift": ("champion dropped", "tab:orange"),
    "undetermined": ("too few new labels", "silver"),
}
OTHER_COLUMNS = "lightgray"  # columns that never drifted: drawn, but not named one by one


@dataclass(frozen=True)
class Registered:
    """One model version: when it was registered (a retrain that passed training) and its number."""

    version: str
    created_at: datetime


def promotions(checks: Sequence[Mapping[str, Any]]) -> list[tuple[datetime, str]]:
    """(the first check against it, the new champion) for each change of champion between consecutive checks."""
    changes, previous = [], None
    for index, check in enumerate(checks):
        version = check.get("champion_version")
        if index and version and version != previous:
            changes.append((check["checked_at"], version))
        previous = version
    return changes


def is_p_value(method: str) -> bool:
    return "p_value" in method or method in P_VALUE_METHODS


def drift_history_png(
    model_name: str, checks: Sequence[Mapping[str, Any]], registered: Sequence[Registered] = ()
) -> bytes:
    """The chart of ``checks`` (oldest first) and the ``registered`` versions, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import dates, pyplot

    figure, (scores, metric, events) = pyplot.subplots(
        3, 1, figsize=(11, 7.5), sharex=True, gridspec_kw={"height_ratios": [4, 2.5, 1.3]}
    )
    figure.suptitle(f"{model_name}: drift checks and the champion on new labels ({len(checks)} checks)")
    if not checks:
        scores.text(0.5, 0.5, "no drift checks recorded yet", ha="center", va="center", transform=scores.transAxes)
    else:
        _column_scores(scores, checks)
        _champion_metric(metric, checks)
        _events(events, checks, registered)
        for moment, version in promotions(checks):
            for axes in (scores, metric, events):
                axes.axvline(moment, color="tab:purple", linewidth=1, alpha=0.6)
            metric.annotate(
                f"champion v{version}",
                (moment, 0),
                xycoords=("data", "axes fraction"),
                xytext=(3, 4),
                textcoords="offset points",
                color="tab:purple",
                fontsize=8,
            )
        # the offset under the axis names the year (not "2026-Oct" when the ticks cross months)
        offsets = ["", "%Y", "%Y", "%Y-%m-%d", "%Y-%m-%d", "%Y-%m-%d %H:%M"]
        formatter = dates.ConciseDateFormatter(events.xaxis.get_major_locator(), offset_formats=offsets)
        events.xaxis.set_major_formatter(formatter)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    pyplot.close(figure)
    return buffer.getvalue()


def _column_scores(axes: Any, checks: Sequence[Mapping[str, Any]]) -> None:
    """One line per column; columns that drifted at least once are coloured and named, the rest grey."""
    series: dict[str, list[tuple[datetime, float]]] = {}
    drifted, methods, thresholds = set(), set(), set()
    for check in checks:
        for column in check.get("columns") or ():
            series.setdefault(column["column"], []).append((check["checked_at"], float(column["score"])))
            methods.add(column["method"])
            thresholds.add(float(column["threshold"]))
            if column["drifted"]:
                drifted.add(column["column"])
    p_values = bool(methods) and all(is_p_value(method) for method in methods)
    for name, points in sorted(series.items(), key=lambda item: item[0] not in drifted):
        moments = [moment for moment, _ in points]
        values = [max(value, P_FLOOR) if p_values else value for _, value in points]
        if name in drifted:
            axes.plot(moments, values, "o-", markersize=4, linewidth=1.4, label=name)
        else:
            label = "columns that never drifted" if name == min(set(series) - drifted) else None
            axes.plot(moments, values, "o-", color=OTHER_COLUMNS, markersize=3, linewidth=1, label=label)
    for threshold in sorted(thresholds):
        label = "per-column threshold (Bonferroni)" if p_values else "per-column threshold"
        axes.axhline(threshold, color="tab:red", linestyle="--", linewidth=1.2, label=label)
    if p_values:
        axes.set_yscale("log")
        axes.set_ylim(P_FLOOR / 3, 1.5)
        axes.set_ylabel("p-value per column (log)\nbelow the red line: drifted")
        axes.text(
            0.01,
            0.02,
            f"p-values below {P_FLOOR:.0e} are drawn at {P_FLOOR:.0e}",
            fontsize=7,
            color="tab:gray",
            transform=axes.transAxes,
        )
    else:
        axes.set_ylabel("drift score per column\nabove the red line: drifted")
    if not series:
        axes.text(0.5, 0.5, "no check compared columns yet", ha="center", va="center", transform=axes.transAxes)
        return
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, title="column", title_fontsize=8)
    axes.grid(alpha=0.3)


def _champion_metric(axes: Any, checks: Sequence[Mapping[str, Any]]) -> None:
    """The champion's score on the new labels with its bootstrap interval; its holdout score at registration."""
    scored = [
        (check["checked_at"], check["performance"])
        for check in checks
        if (check.get("performance") or {}).get("current_value") is not None
    ]
    if not scored:
        axes.text(
            0.5,
            0.5,
            "no check had new labels to score the champion on",
            ha="center",
            va="center",
            transform=axes.transAxes,
            color="tab:gray",
        )
        axes.set_yticks([])
        return
    metric_name = scored[-1][1]["metric"]
    for dropped, (label, colour) in {False: ("as expected", "tab:blue"), True: ("dropped", "tab:orange")}.items():
        picked = [(moment, p) for moment, p in scored if (p["status"] == "drift") == dropped]
        if not picked:
            continue
        values = [p["current_value"] for _, p in picked]
        below = [value - _or(p.get("lower"), value) for value, (_, p) in zip(values, picked, strict=True)]
        above = [_or(p.get("upper"), value) - value for value, (_, p) in zip(values, picked, strict=True)]
        axes.errorbar(
            [m for m, _ in picked],
            values,
            yerr=[below, above],
            fmt="o",
            color=colour,
            capsize=3,
            markersize=5,
            label=f"on new labels: {label}",
        )
    references = [(moment, p["reference_value"]) for moment, p in scored if p.get("reference_value") is not None]
    if references:
        axes.plot(
            [m for m, _ in references],
            [v for _, v in references],
            linestyle="none",
            marker="_",
            markersize=14,
            markeredgewidth=2,
            color="black",
            label="its holdout score at registration",
        )
    axes.set_ylabel(f"champion {metric_name}\n(bars: bootstrap interval)")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    axes.grid(alpha=0.3)


def _events(axes: Any, checks: Sequence[Mapping[str, Any]], registered: Sequence[Registered]) -> None:
    """Three rows: the data-drift verdict of each check, the performance verdict, the versions registered."""
    for status, (label, colour) in VERDICT_STYLE.items():
        moments = [c["checked_at"] for c in checks if c.get("status") == status]
        if moments:
            axes.scatter(moments, [0] * len(moments), marker="s", color=colour, s=30, label=label)
    for status, (label, colour) in PERFORMANCE_STYLE.items():
        moments = [c["checked_at"] for c in checks if (c.get("performance") or {}).get("status") == status]
        if moments:
            axes.scatter(moments, [1] * len(moments), marker="s", color=colour, s=30, label=label)
    first = checks[0]["checked_at"]
    shown = [version for version in registered if version.created_at >= first]
    for version in shown:
        axes.scatter([version.created_at], [2], marker="^", color="black", s=40)
        axes.annotate(
            f"v{version.version}", (version.created_at, 2), xytext=(4, -3), textcoords="offset points", fontsize=7
        )
    axes.set_yticks([0, 1, 2], ["data drift", "performance", "retrained"], fontsize=8)
    axes.set_ylim(-0.6, 2.6)
    axes.invert_yaxis()
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.15), fontsize=7, title="verdict", title_fontsize=7)
    axes.grid(axis="x", alpha=0.3)
    axes.set_xlabel("checked at (UTC); purple lines: the champion changed")


def _or(value: float | None, default: float) -> float:
    return default if value is None else value
