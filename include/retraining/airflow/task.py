"""The one task adapter: every TaskFlow task of the DAGs is ``return run_stage("<stage>", **xcoms)``,
but the first, ``return resolve_run_config(model)``, which resolves the run's config once.

It hands the stage the run's config (the first task's XCom) and identity, rebuilds the typed records
the stage function annotates from their XCom dicts, calls the stage and returns the result's XCom
form. A record the task was not handed is pulled from the task that produces it (``PRODUCERS``), so
the DAG draws the lifecycle chain, not every data dependency. Failures a retry cannot fix
(``PERMANENT``) end the task at once; anything else (a network fault, a service that is down) keeps
the task's retries. Imported at DAG parse time, so only the standard library is imported at the top.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from typing import Any, get_type_hints

# record parameter of a stage -> the retrain DAG's task whose XCom it is (the drift monitor hands every record)
PRODUCERS = {
    "snapshot": "extract",
    "validation": "validate",
    "drift": "detect_drift",
    "decision": "decide",
    "training": "train",
    "evaluation": "evaluate",
    "final": "refit",
    "registration": "register",
    "promotion": "promote",
}
log = logging.getLogger(__name__)


def permanent_errors() -> tuple[type[Exception], ...]:
    """Deterministic failures: the same input fails the same way on every try. A gate refusal is not
    among them because it is no failure: the run succeeds and says why the champion stayed."""
    from include.retraining.adapters.registry import UntrustedModelError
    from include.retraining.core.config import ConfigError
    from include.retraining.core.contract import DataContractError
    from include.retraining.core.records import RecordError
    from include.retraining.stages.rollback import RollbackRefused

    return DataContractError, ConfigError, RecordError, UntrustedModelError, RollbackRefused


def resolve_run_config(model: str) -> dict[str, Any]:
    """The first task of every DAG: the run's config from every layer, checked in full, returned with
    its sha256 as the XCom every later task of the run reads (call inside a task only)."""
    from airflow.sdk import get_current_context

    from include.retraining.airflow.runtime import resolve_config

    context = get_current_context()
    record = failing_fast(lambda: resolve_config(model, context["params"]))
    log.info("config of model %s resolved: sha256 %s", model, record.sha256)
    return record.to_dict()


def run_stage(name: str, **xcoms: Any) -> Any:
    """Call ``include.retraining.stages.<name>`` for the running task (call inside a task only)."""
    from airflow.sdk import get_current_context

    from include.retraining import stages
    from include.retraining.airflow.runtime import RESOLVE_TASK, run_config, run_info

    context = get_current_context()
    ti = context["ti"]
    return failing_fast(
        lambda: call_stage(
            getattr(stages, name),
            xcoms,
            lambda: run_config(ti.xcom_pull(task_ids=RESOLVE_TASK)),
            lambda: run_info(context),
            lambda parameter: ti.xcom_pull(task_ids=PRODUCERS[parameter]),
        )
    )


def failing_fast(call: Callable[[], Any]) -> Any:
    from airflow.sdk.exceptions import AirflowFailException

    try:
        return call()
    except permanent_errors() as error:
        # no retries: a retry reads the same data and config and fails the same way
        raise AirflowFailException(f"{type(error).__name__} (not retried): {error}") from error


def call_stage(
    stage: Callable[..., Any],
    xcoms: Mapping[str, Any],
    config: Callable,
    run: Callable,
    pull: Callable[[str], Any] | None = None,
) -> Any:
    """Scheduler-free core of ``run_stage``: parameters typed PipelineConfig/RunInfo get ``config()``/``run()``,
    the others their XCom value as the annotated record type (None stays None); a record not in ``xcoms``
    comes from ``pull(parameter)``."""
    from include.retraining.core.config import PipelineConfig
    from include.retraining.core.records import Record, RunInfo, coerce

    hints = get_type_hints(stage)
    kwargs = {}
    for parameter in inspect.signature(stage).parameters:
        hint = hints[parameter]
        if hint is PipelineConfig:
            kwargs[parameter] = config()
        elif hint is RunInfo:
            kwargs[parameter] = run()
        else:
            value = xcoms[parameter] if parameter in xcoms or pull is None else pull(parameter)
            kwargs[parameter] = coerce(hint, value, f"{stage.__name__}({parameter})")
    result = stage(**kwargs)
    return result.to_dict() if isinstance(result, Record) else result
