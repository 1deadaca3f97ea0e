"""``make bench`` section ``backtest``: what a replay costs per step, and that it grows linearly with the steps.

``make histories``' ``insurance_abrupt`` (a year of the sample data at 800 rows a day, about 292k rows, the
concept flipping on 2023-07-01) is generated in memory once with ``include.demo.histories``; ``replay.replay``
then runs the three policies over ``STEPS`` and twice as many weekly steps from day 90, with that history's
model file. The history is read once in either case, so the ratio of the two runs' seconds per step is the
growth: 1.0 is linear. One round each (a replay is minutes long); the MongoDB read is timed by
``make backtest`` itself.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

MODEL_FILE = Path(__file__).parent / "backtest" / "models" / "insurance_abrupt.json"
FIRST_STEP_DAY = 90
STEPS = 13  # a quarter of weekly steps, then half a year
STEP = timedelta(days=7)


def bench_backtest() -> dict[str, float]:
    from include.demo import histories
    from include.retraining.backtest import replay
    from include.retraining.core.config import load_config

    config, rows = load_config(base=MODEL_FILE), histories.insurance_frame(histories.ABRUPT)
    first = histories.INSURANCE_START + timedelta(days=FIRST_STEP_DAY)
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
