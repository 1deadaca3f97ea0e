"""Two runs of one model on the same window at once (what ``max_active_runs=1`` does not prevent once a
finished run is cleared and runs beside a new one): both register their version, exactly one moves the
champion, the other refuses and says why. Never two promotions from one champion.

The runs' promote stages start together (a barrier), so without the model's promotion lease
(include/retraining/adapters/leases.py) both would read the old champion and both would move it.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from include.retraining import stages
from include.retraining.adapters import registry
from scripts.airflow_group import seed_source
from tests.faults.conftest import config_of, documents, manual_run, model_overrides, run_stages
from tests.faults.end_state import aliases, versions

pytestmark = [
    pytest.mark.faults,
    pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Hint. Inferred schema contains integer:UserWarning"),
]


def test_two_runs_of_one_window_promote_once(fault_env):
    end = datetime.now(UTC).replace(microsecond=0)
    docs, first_end = documents(end)
    config = config_of(model_overrides("faults_twins"))
    seed_source(config, docs)
    run_stages(config, manual_run("faults__first_champion", first_end))
    twins = {run_id: run_stages(config, manual_run(run_id, end), until="register") for run_id in ("twin_a", "twin_b")}
    assert all(records["evaluate"].passed for records in twins.values()), "the gate must pass for both"
    together = threading.Barrier(len(twins))

    def promote(run_id: str):
        together.wait(timeout=60)
        return stages.promote(config, twins[run_id]["register"], twins[run_id]["evaluate"])

    with ThreadPoolExecutor(len(twins)) as pool:
        promotions = dict(zip(twins, pool.map(promote, twins), strict=True))

    promoted = [run_id for run_id, promotion in promotions.items() if promotion.promoted]
    assert len(promoted) == 1, f"two promotions from one champion: {promotions}"
    [winner] = promoted
    [loser] = [run_id for run_id in twins if run_id != winner]
    won = twins[winner]["register"].version
    assert promotions[loser].reason == (
        f"champion moved to v{won} during this run (evaluated against v1): not promoting on a stale comparison"
    )
    assert registry.champion(config.mlflow, config.model_name).version == won
    assert [v["version"] for v in versions(config)] == ["1", "2", "3"]  # one version per run
    assert aliases(config)["champion"] == won
