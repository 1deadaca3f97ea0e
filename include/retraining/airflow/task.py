"""The one task adapter: every TaskFlow task of the DAGs is ``return run_stage("<stage>", **xcoms)``.

It resolves the run's config and identity, rebuilds the typed records the stage function annotates
from their XCom dicts, calls the stage and returns the result's XCom form. Imported at DAG parse time,
so only the standard library is imported at the top.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, get_type_hints


def run_stage(name: str, **xcoms: Any) -> Any:
    """Call ``include.retraining.stages.<name>`` for the running task (call inside a task only)."""
    from airflow.sdk import get_current_context

    from include.retraining import stages
    from include.retraining.airflow.runtime import run_info, task_config

    context = get_current_context()
    return call_stage(getattr(stages, name), xcoms, lambda: task_config(context["params"]), lambda: run_info(context))


def call_stage(stage: Callable[..., Any], xcoms: Mapping[str, Any], config: Callable, run: Callable) -> Any:
    """Scheduler-free core of ``run_stage``: parameters typed PipelineConfig/RunInfo get ``config()``/``run()``,
    the others their XCom value as the annotated record type (None stays None)."""
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
            kwargs[parameter] = coerce(hint, xcoms[parameter], f"{stage.__name__}({parameter})")
    result = stage(**kwargs)
    return result.to_dict() if isinstance(result, Record) else result
