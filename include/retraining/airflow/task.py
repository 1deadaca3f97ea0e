"""The one task adapter: the DAGs' tasks are made here from their stage graph (``core.graph``).

``stage_tasks(graph, model)`` gives one TaskFlow task per stage, and ``resolve_config``, which resolves
the run's config once. A DAG file hands each task the run's config and the records its stage takes, as
XComArgs (``tasks.train(config, validation, drift)``), so Airflow's graph draws every data edge; handing
a task anything else, or a record from another task than the one that makes it, fails the parse. At run
time a task rebuilds the records it was handed as their typed records, calls its stage with them (and
the config and the run's identity where the stage has those parameters) and returns the result's XCom
form; handed None for the record of a skipped stage that it does not declare optional, it skips.
Failures a retry cannot fix (``permanent_errors``) end the task at once; anything else (a network fault,
a service that is down) keeps the task's retries. Imported at DAG parse time: Airflow and the library
are imported inside the functions.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any

from include.retraining.core.graph import CONFIG_TASK, Graph, Stage

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


def stage_tasks(graph: Graph, model: str) -> SimpleNamespace:
    """The tasks of a DAG (call inside its ``@dag`` function): ``resolve_config()`` and one per stage of
    ``graph``, each called with the config and its records and returning its XComArg."""
    from airflow.sdk import task

    @task(task_id=CONFIG_TASK)
    def resolve_config():
        return resolve_run_config(model)

    tasks = {stage.name: stage_task(graph, stage, model) for stage in graph.stages}
    return SimpleNamespace(resolve_config=resolve_config, **tasks)


def stage_task(graph: Graph, stage: Stage, model: str) -> Callable[..., Any]:
    """``stage`` as a TaskFlow task of ``model``'s DAG whose call is checked against the graph: the config,
    then the records ``stage.takes`` (by position or name), each from the task that makes it."""
    from airflow.sdk import task

    from include.retraining.airflow.assets import model_asset

    names = ("config", *stage.takes)
    signature = inspect.Signature([inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names])

    def body(config: Mapping[str, Any] | None, **records: Any) -> Any:
        return run_stage(graph, stage.name, config, records)

    body.__signature__ = signature  # type: ignore[attr-defined]  # Airflow hands **kwargs the whole context

    options: dict[str, Any] = {"task_id": stage.name, "multiple_outputs": stage.unpacked}
    if stage.pool:
        options["pool"] = stage.pool
    if stage.queue:
        options["queue"] = stage.queue
    if stage.join:
        options["trigger_rule"] = "none_failed_min_one_success"
    if stage.emits:
        options["outlets"] = [model_asset(stage.emits, model)]
    decorated = (task.branch if stage.branch else task)(**options)(body)

    def add(*args: Any, **kwargs: Any) -> Any:
        try:
            handed = signature.bind(*args, **kwargs).arguments
        except TypeError as error:
            raise TypeError(f"task {stage.name} is handed ({', '.join(names)}): {error}") from error
        expected = {"config": CONFIG_TASK} | {name: graph.producer(name) for name in stage.takes}
        wrong = [f"{n} from {_task_of(v)} (not {expected[n]})" for n, v in handed.items() if _task_of(v) != expected[n]]
        if wrong:
            raise ValueError(f"task {stage.name} is handed {', '.join(wrong)}")
        return decorated(**handed)

    return add


def _task_of(value: Any) -> str | None:
    """The task whose XCom ``value`` is, if it is one."""
    operator = getattr(value, "operator", None)
    return getattr(operator, "task_id", None)


def resolve_run_config(model: str) -> dict[str, Any]:
    """The first task of every DAG: the run's config from every layer, checked in full, returned with
    its sha256 as the XCom every later task of the run is handed (call inside a task only)."""
    from airflow.sdk import get_current_context

    from include.retraining.airflow.runtime import resolve_config

    context = get_current_context()
    record = failing_fast(lambda: resolve_config(model, context))
    log.info("config of model %s resolved: sha256 %s", model, record.sha256)
    return record.to_dict()


def run_stage(graph: Graph, name: str, config: Mapping[str, Any] | None, records: Mapping[str, Any]) -> Any:
    """Call ``include.retraining.stages.<name>`` with the XComs its task was handed: the run's resolved
    config and the records, rebuilt as the types the graph gives them (call inside a task only)."""
    from airflow.sdk import get_current_context

    from include.retraining import stages
    from include.retraining.airflow.runtime import run_config, run_info
    from include.retraining.core.records import Record

    context = get_current_context()
    skipped = [record for record, value in records.items() if value is None and record not in graph[name].optional]
    if skipped:
        from airflow.sdk.exceptions import AirflowSkipException

        # a join runs once no task before it failed, also when the stage that makes what it needs was skipped
        makers = ", ".join(graph.producer(record) for record in skipped)
        raise AirflowSkipException(f"skipped with {makers}: {name} needs their {', '.join(skipped)}")

    def call() -> Any:
        typed = typed_records(graph, name, records)
        result = call_stage(getattr(stages, name), typed, lambda: run_config(config), lambda: run_info(context))
        return result.to_dict() if isinstance(result, Record) else result

    return failing_fast(call, lambda error: permission_denied(error, run_config(config), context["dag_run"].dag_id))


def failing_fast(call: Callable[[], Any], denied: Callable[[Exception], str | None] | None = None) -> Any:
    """``call()``; a failure a retry cannot fix ends the task at once, a permission error (``denied`` says
    which, in one sentence) too: until someone grants the right, every retry is refused the same way."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        return call()
    except permanent_errors() as error:
        # no retries: a retry reads the same data and config and fails the same way
        raise AirflowFailException(f"{type(error).__name__} (not retried): {error}") from error
    except Exception as error:
        sentence = _denial(denied, error)
        if sentence is None:
            raise
        raise AirflowFailException(f"permission denied (not retried): {sentence}") from error


def _denial(denied: Callable[[Exception], str | None] | None, error: Exception) -> str | None:
    try:
        return denied(error) if denied else None
    except Exception:  # explaining must not hide the error it explains
        log.exception("could not explain %s", type(error).__name__)
        return None


def permission_denied(error: Exception, config: Any, dag_id: str) -> str | None:
    """The one sentence for a permission error of MongoDB, S3 or MLflow (user, resource, fix), else None."""
    from include.retraining.adapters import mongo, registry, storage
    from include.retraining.airflow.models import model_of

    model = model_of(dag_id) or config.model_name
    collections: dict[str, list[str]] = {config.source.database: [config.source.collection]}
    monitoring = [config.monitoring.collection, config.monitoring.state_collection, config.scoring.collection]
    collections.setdefault(config.monitoring_database, []).extend(monitoring)
    grant = (
        "as MongoDB's administrator, grant the pipeline's role this model's collections: "
        f"make mongo-setup MODEL={model}"
    )
    return (
        mongo.denied(error, config.source.conn_id, collections, grant)
        or storage.denied(error, config.storage)
        or registry.denied(error, config.mlflow, config.model_name)
    )


def typed_records(graph: Graph, name: str, xcoms: Mapping[str, Any]) -> dict[str, Any]:
    """The XCom form of each record stage ``name`` takes, as its record type (None stays None: a skipped
    stage's record)."""
    from include.retraining.core.records import parse

    typed = {}
    for record, value in xcoms.items():
        cls = graph.record_type(record)
        typed[record] = parse(cls, value, f"{name}({record})") if cls and value is not None else value
    return typed


def call_stage(
    stage: Callable[..., Any],
    records: Mapping[str, Any],
    config: Callable[[], Any],
    run: Callable[[], Any],
) -> Any:
    """Scheduler-free core of ``run_stage``: ``stage`` called with ``records`` by parameter name, and with
    ``config()`` / ``run()`` where it has a ``config`` / ``run`` parameter (resolved only then)."""
    parameters = inspect.signature(stage).parameters
    context = {"config": config, "run": run}
    return stage(**{name: resolve() for name, resolve in context.items() if name in parameters}, **records)
