"""What a replay shows: per policy the retrains, promotions, alarms and the prequential metric (mean, worst,
steps to recover after its largest drop), the targets of issue 16 checked against them, a CSV of every
step and a PNG of the metric over time."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from include.retraining.backtest.replay import Step, better
from include.retraining.core.config import lower_is_better

RECOVERY_TOLERANCE = 0.01  # recovered: within 1% (relative) of the level before the drop
PRE_DROP_STEPS = 3  # the level before a drop: the mean of this many earlier steps
MEAN_TOLERANCE = 0.01  # configured within 1% (relative) of retraining every step...
RETRAIN_SHARE = 0.25  # ...with at most this share of its retrains
RECOVERY_STEPS = 3  # after an abrupt change the champion recovers within this many steps


@dataclass(frozen=True)
class Summary:
    policy: str
    retrains: int  # after the first champion
    promotions: int
    alarms: int | None  # None: the policy does not check
    mean: float | None
    worst: float | None
    drop_at: str | None  # the step of the largest drop against the steps before it
    recovery_steps: int | None  # None: not recovered within the replay
    mean_after_change: float | None  # from the step where never-retrain dropped most


def metric_series(steps: list[Step]) -> pd.Series:
    return pd.Series([s.metric if s.metric is not None else math.nan for s in steps], dtype=float)


def largest_drop(values: pd.Series, metric: str) -> int | None:
    """The step whose metric fell most below the mean of the ``PRE_DROP_STEPS`` before it."""
    gain = better(metric)
    before = values.shift(1).rolling(PRE_DROP_STEPS, min_periods=1).mean()
    drops = pd.Series([gain(b, v) for b, v in zip(before, values, strict=True)])
    return None if drops.dropna().empty else int(drops.idxmax())


def recovery(values: pd.Series, achievable: float | None, drop: int | None, metric: str) -> int | None:
    """Steps after ``drop`` until the metric is within ``RECOVERY_TOLERANCE`` of the level before it, or of
    ``achievable`` (the level the best policy settles at by the end) when that is lower: data that got
    harder for every model cannot be recovered from beyond what a model adapted to it reaches."""
    if drop is None:
        return None
    gain = better(metric)
    level = values.iloc[max(0, drop - PRE_DROP_STEPS) : drop].mean()
    target = achievable if achievable is not None and gain(achievable, level) < 0 else level
    for index in range(drop, len(values)):
        value = values.iloc[index]
        if not math.isnan(value) and gain(value, target) >= -RECOVERY_TOLERANCE * abs(target):
            return index - drop
    return None


def summarize(runs: dict[str, list[Step]], metric: str) -> dict[str, Summary]:
    series = {name: metric_series(steps) for name, steps in runs.items()}
    change = largest_drop(series["never"], metric) if "never" in series else None
    achievable = settled_level(series, metric)
    summaries = {}
    for name, steps in runs.items():
        values = series[name]
        drop = largest_drop(values, metric)
        after = values.iloc[change:] if change is not None else values
        checks = any(s.drift_status is not None for s in steps[1:])
        summaries[name] = Summary(
            policy=name,
            retrains=sum(s.retrained for s in steps[1:]),
            promotions=sum(s.promoted for s in steps[1:]),
            alarms=sum(s.alarm for s in steps[1:]) if checks else None,
            mean=_finite(values.mean()),
            worst=_finite(values.max() if lower_is_better(metric) else values.min()),
            drop_at=steps[drop].end.date().isoformat() if drop is not None else None,
            recovery_steps=recovery(values, achievable, drop, metric),
            mean_after_change=_finite(after.mean()),
        )
    return summaries


def settled_level(series: dict[str, pd.Series], metric: str) -> float | None:
    """The best level any policy settles at: its mean over the last ``PRE_DROP_STEPS`` steps of the replay."""
    means = [mean for values in series.values() if not math.isnan(mean := values.iloc[-PRE_DROP_STEPS:].mean())]
    return max(means, key=lambda mean: better(metric)(mean, 0.0)) if means else None


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def targets(summaries: dict[str, Summary], metric: str) -> list[tuple[str, bool | None, str]]:
    """(target, met, the figures): None when a figure is missing (e.g. no retrain every step)."""
    configured, always, never = (summaries.get(name) for name in ("configured", "always", "never"))
    results = []
    if configured and always and configured.mean is not None and always.mean is not None:
        gap = better(metric)(configured.mean, always.mean) / abs(always.mean)
        share = configured.retrains / always.retrains if always.retrains else 0.0
        met = gap >= -MEAN_TOLERANCE and share <= RETRAIN_SHARE
        results.append(
            (
                f"mean within {MEAN_TOLERANCE:.0%} of always with <= {RETRAIN_SHARE:.0%} of its retrains",
                met,
                f"{gap:+.2%} vs always, {configured.retrains} of {always.retrains} retrains ({share:.0%})",
            )
        )
    if configured and never and configured.mean_after_change is not None and never.mean_after_change is not None:
        gap = better(metric)(configured.mean_after_change, never.mean_after_change)
        results.append(
            (
                "never worse than never-retrain after the change",
                gap >= 0,
                f"after the change {configured.mean_after_change:.4f} vs never {never.mean_after_change:.4f}",
            )
        )
    if configured:
        steps = configured.recovery_steps
        results.append(
            (
                f"recovers within {RECOVERY_STEPS} steps after its largest drop",
                steps is not None and steps <= RECOVERY_STEPS,
                f"{steps if steps is not None else 'not'} steps after {configured.drop_at}",
            )
        )
    return results


def table(summaries: dict[str, Summary], metric: str) -> str:
    header = (
        f"{'policy':<11}{'retrains':>9}{'promotions':>11}{'alarms':>8}{'mean ' + metric:>16}{'worst':>9}"
        f"{'largest drop':>14}{'recovered':>11}{'after change':>14}"
    )
    lines = [header, "-" * len(header)]
    for s in summaries.values():
        recovered = f"{s.recovery_steps} steps" if s.recovery_steps is not None else "no"
        lines.append(
            f"{s.policy:<11}{s.retrains:>9}{s.promotions:>11}{_text(s.alarms):>8}{_number(s.mean):>16}"
            f"{_number(s.worst):>9}{s.drop_at or '-':>14}{recovered:>11}{_number(s.mean_after_change):>14}"
        )
    return "\n".join(lines)


def lines(summaries: dict[str, Summary], metric: str) -> list[str]:
    return [
        f"backtest: policy={s.policy} retrains={s.retrains} promotions={s.promotions} alarms={_text(s.alarms)} "
        f"metric={metric} mean={_number(s.mean)} worst={_number(s.worst)}"
        for s in summaries.values()
    ]


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _text(value: int | None) -> str:
    return "-" if value is None else str(value)


def write_csv(runs: dict[str, list[Step]], path: Path) -> Path:
    rows = [asdict(step) for steps in runs.values() for step in steps]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


STYLES = {"configured": ("-", 2.2), "always": ("--", 1.4), "never": (":", 1.6)}


def write_png(runs: dict[str, list[Step]], metric: str, title: str, path: Path) -> Path:
    """The prequential metric per policy over time; below it one row per policy with its retrains (x) and
    promotions (o), so policies that score alike still show what each did."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, (curves, events) = pyplot.subplots(
        2, 1, figsize=(11, 5.5), sharex=True, gridspec_kw={"height_ratios": [4, 1]}
    )
    for row, (name, steps) in enumerate(runs.items()):
        style, width = STYLES.get(name, ("-", 1.4))
        ends = [s.end for s in steps]
        (line,) = curves.plot(ends, metric_series(steps), style, label=name, linewidth=width)
        for marker, picked in (("x", [s for s in steps[1:] if s.retrained]), ("o", [s for s in steps if s.promoted])):
            if picked:
                ends = [s.end for s in picked]
                events.scatter(ends, [row] * len(ends), marker=marker, color=line.get_color(), s=30)
    curves.set_title(title)
    curves.set_ylabel(f"{metric} on the next step's labels")
    curves.legend(title="policy", loc="lower left", fontsize=8)
    curves.grid(alpha=0.3)
    events.set_yticks(range(len(runs)), list(runs))
    events.set_ylim(-0.6, len(runs) - 0.4)
    events.invert_yaxis()
    events.set_ylabel("x retrain\no promotion", fontsize=8)
    events.grid(axis="x", alpha=0.3)
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return path
