"""``make bench`` section ``backtest``: what a replay costs per step, and that it grows linearly with the steps.

A year of the sample data at 800 rows a day (about 292k rows, the concept flipping on day 180, as
``make histories``' ``insurance_abrupt``) is generated in memory once; ``replay.replay`` then runs the three
policies over ``STEPS`` and twice as many weekly steps from day 90, with the shipped model config. The
history is read once in either case, so the ratio of the two runs' seconds per step is the growth: 1.0 is
linear. One round each (a replay is minutes long); the MongoDB read is timed by ``make backtest`` itself.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pandas as pd

START = datetime(2023, 1, 1, tzinfo=UTC)
DAYS, PER_DAY, CHANGE_DAY, FIRST_STEP_DAY = 365, 800, 180, 90
STEPS = 13  # a quarter of weekly steps, then half a year
STEP = timedelta(days=7)


def history() -> pd.DataFrame:
    from include.demo.sample_data import generate_frame

    days = []
    for day in range(DAYS):
        begin = START + timedelta(days=day)
        concept = 1.0 if day >= CHANGE_DAY else 0.0
        end = begin + timedelta(days=1)
        days.append(generate_frame(PER_DAY, start=begin, end=end, seed=day, concept_drift=concept))
    frame = pd.concat(days, ignore_index=True)
    frame["_id"] = [str(i) for i in range(len(frame))]
    return frame


def bench_backtest() -> dict[str, float]:
    from include.retraining.backtest import replay
    from include.retraining.core.config import load_config

    config, rows = load_config(), history()
    first = START + timedelta(days=FIRST_STEP_DAY)
    figures = {"backtest.rows": float(len(rows))}
    per_step = {}
    for steps in (STEPS, 2 * STEPS):
        ends = replay.step_ends(first, first + STEP * (steps - 1), STEP)
        started = time.monotonic()
        replay.replay(config, rows, ends, STEP)
        seconds = time.monotonic() - started
        per_step[steps] = seconds / steps
        figures[f"backtest.{steps}_steps.seconds"] = seconds
    figures["backtest.seconds_per_step"] = per_step[2 * STEPS]
    figures["backtest.growth.per_step_ratio"] = per_step[2 * STEPS] / per_step[STEPS]
    return figures
