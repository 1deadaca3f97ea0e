"""The stage graph of each DAG, declared once: which stages run, in which order, what record each one
takes from which other, what it returns, and where it runs.

The DAG factory builds its tasks from it and checks, at parse time, that each task is handed exactly the
records its stage takes, from the stages that make them (so Airflow's graph draws every data edge); the
tests and the bench drive the stages in process by the same declaration. A stage's parameters are
``config`` (the run's config, which every stage task is handed by the DAG's first task), ``run`` (the
run's identity) and the records it ``takes``, by their names. A record is None only when the stage that
makes it was skipped; a stage that does not declare it ``optional`` is then skipped too. Read at DAG
parse time, so it lives in the core, beside the records: the stages package imports pandas and
scikit-learn.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from include.retraining.core.records import (
    Approval,
    Decision,
    DriftResult,
    Evaluation,
    NewData,
    Promotion,
    Record,
    Registration,
    Scoring,
    Snapshot,
    TrainingResult,
    ValidationReport,
)

CONFIG_TASK = "resolve_config"  # the first task of every DAG: its XCom is the run's config, handed to every stage
# The Celery queue of the stages that hold a dataset or a model in memory, and the queues every worker of
# the compose stack and of the local stack consumes ("default" is Airflow's [operators] default_queue).
HEAVY_QUEUE = "heavy"
WORKER_QUEUES = ("default", HEAVY_QUEUE)


@dataclass(frozen=True)
class Stage:
    """One task of a DAG, and the function of ``include.retraining.stages`` it calls (same name)."""

    name: str
    takes: tuple[str, ...] = ()  # the records it is handed, by parameter name, in its signature's order
    gives: str | None = None  # the name its record goes by in the stages that take it
    returns: type[Record] | None = None  # None: plain JSON (a receipt, a branch's task ids)
    pool: str | None = None
    queue: str | None = None  # the Celery queue; None: the default queue
    branch: bool = False  # returns the ids of the tasks to follow; the others are skipped
    join: bool = False  # the end of a branch's paths: runs unless a task before it failed
    optional: tuple[str, ...] = ()  # records it takes that are None when their stage was skipped (a join's)
    unpacked: bool = False  # each key of its dict is also an XCom of its own (an operator's arguments read them)
    emits: str | None = None  # on success, an event of the model's Asset of this kind (``airflow.assets``)


@dataclass(frozen=True)
class Graph:
    """The stages of one DAG in the order they run. Records made by operators the DAG declares itself
    (a sensor) are ``operators``: record name -> (task id, record type)."""

    stages: tuple[Stage, ...]
    operators: Mapping[str, tuple[str, type[Record]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        given = {name: task for name, (task, _) in self.operators.items()}
        for stage in self.stages:
            if not set(stage.optional) <= set(stage.takes):
                raise ValueError(f"stage {stage.name}: optional {stage.optional} are not all among {stage.takes}")
            missing = [record for record in stage.takes if record not in given]
            if missing:
                raise ValueError(f"stage {stage.name} takes {missing}, which no stage before it gives")
            if stage.gives:
                if stage.gives in given:
                    raise ValueError(f"record {stage.gives!r} is given twice: by {given[stage.gives]} and {stage.name}")
                given[stage.gives] = stage.name
        names = [stage.name for stage in self.stages]
        if len(set(names)) < len(names):
            raise ValueError(f"a stage name is declared twice: {names}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(stage.name for stage in self.stages)

    def __getitem__(self, name: str) -> Stage:
        return next(stage for stage in self.stages if stage.name == name)

    def producer(self, record: str) -> str:
        """The task whose XCom the record is."""
        if record in self.operators:
            return self.operators[record][0]
        for stage in self.stages:
            if stage.gives == record:
                return stage.name
        raise KeyError(f"no stage of the graph gives {record!r}")

    def record_type(self, record: str) -> type[Record] | None:
        if record in self.operators:
            return self.operators[record][1]
        return self[self.producer(record)].returns

    def edges(self) -> set[tuple[str, str]]:
        """The data edges: (the task that makes a record, the task handed it), the run's config included."""
        return {(CONFIG_TASK, stage.name) for stage in self.stages} | {
            (self.producer(record), stage.name) for stage in self.stages for record in stage.takes
        }

    def lineage(self, name: str) -> tuple[str, ...]:
        """The stages whose records ``name`` needs, directly or not, and ``name`` itself, in order."""
        needed, todo = {name}, [name]
        while todo:
            stage = self[todo.pop()]
            for record in stage.takes:
                producer = self.producer(record)
                if producer in self.names and producer not in needed:
                    needed.add(producer)
                    todo.append(producer)
        return tuple(stage for stage in self.names if stage in needed)

    def inputs(self, name: str, records: Mapping[str, Any]) -> dict[str, Any]:
        """What stage ``name`` is handed, from ``records`` by producing stage (a missing one is None, as
        a skipped stage's)."""
        return {record: records.get(self.producer(record)) for record in self[name].takes}

    def without(self, *tasks: str) -> Graph:
        """The graph of a DAG that leaves out ``tasks`` (stages or operators); the stages that take what
        they make, as optional records only, do without it."""
        dropped = {record for record, (task, _) in self.operators.items() if task in tasks}
        dropped |= {stage.gives for stage in self.stages if stage.name in tasks and stage.gives}
        kept = [stage for stage in self.stages if stage.name not in tasks]
        for stage in kept:
            if needed := (set(stage.takes) - set(stage.optional)) & dropped:
                raise ValueError(f"stage {stage.name} needs {sorted(needed)}, which {tasks} make")
        return Graph(
            tuple(
                replace(stage, takes=_but(stage.takes, dropped), optional=_but(stage.optional, dropped))
                for stage in kept
            ),
            {record: made for record, made in self.operators.items() if record not in dropped},
        )


def _but(records: tuple[str, ...], dropped: set[str]) -> tuple[str, ...]:
    return tuple(record for record in records if record not in dropped)


APPROVAL_STEP = ("approval_request", "approve")  # what gate.approval "required" in a model's file adds

RETRAIN_WITH_APPROVAL = Graph(
    (
        Stage("extract", gives="snapshot", returns=Snapshot, queue=HEAVY_QUEUE),
        Stage("validate", ("snapshot",), "validation", ValidationReport),
        Stage("detect_drift", ("validation",), "drift", DriftResult, queue=HEAVY_QUEUE),
        Stage("alert_on_drift", ("validation", "drift")),
        Stage("decide", ("drift",), "decision", Decision),
        # the DAG's branch retrain_or_skip follows decide: train and what needs it, or skip
        Stage("skip", ("drift", "decision"), returns=Decision),
        Stage("train", ("validation", "drift"), "training", TrainingResult, pool="training", queue=HEAVY_QUEUE),
        Stage("evaluate", ("training",), "evaluation", Evaluation, queue=HEAVY_QUEUE),
        Stage("refit", ("training", "evaluation"), "final", TrainingResult, pool="training", queue=HEAVY_QUEUE),
        Stage("register", ("validation", "drift", "final", "evaluation", "decision"), "registration", Registration),
        # what the DAG's approve task (an ApprovalOperator: airflow.approval) asks, or why it asks nobody
        Stage("approval_request", ("drift", "evaluation", "registration"), unpacked=True),
        # its Asset event schedules the model's score DAG: a new champion re-scores the open window.
        # approval: the approve task's answer
        Stage(
            "promote",
            ("registration", "evaluation", "approval"),
            "promotion",
            Promotion,
            emits="champion",
            optional=("approval",),
        ),
        Stage(
            "notify",
            ("validation", "drift", "decision", "evaluation", "registration", "promotion"),
            join=True,
            optional=("evaluation", "registration", "promotion"),  # None on the skip path
        ),
    ),
    operators={"approval": ("approve", Approval)},
)
# the retrain DAG of a model whose file leaves gate.approval automatic (the default)
RETRAIN = RETRAIN_WITH_APPROVAL.without(*APPROVAL_STEP)

MONITOR = Graph(
    (
        Stage("open_window", unpacked=True),  # the sensor's templated arguments read its keys
        Stage("check_drift", ("new_data",), "drift", DriftResult),
        Stage("route", ("drift",), branch=True),
        Stage("send_drift_alert", ("new_data", "drift")),
        Stage("retrain_conf", ("new_data", "drift")),  # the conf of the DAG's trigger_retrain
        Stage("record_no_drift", ("drift",)),
        Stage("advance_watermark", ("new_data", "drift"), join=True),
    ),
    operators={"new_data": ("wait_for_new_data", NewData)},
)

ROLLBACK = Graph((Stage("rollback", returns=Promotion, emits="champion"),))  # the champion moved back is scored

SCORE = Graph((Stage("score", returns=Scoring, queue=HEAVY_QUEUE),))  # holds the champion and a batch
