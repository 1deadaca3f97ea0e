"""The stage graphs say what the stage functions take and return, and refuse a graph that cannot run."""

from __future__ import annotations

import inspect
from types import NoneType, UnionType
from typing import get_args, get_type_hints

import pytest

from include.retraining import stages
from include.retraining.core.graph import MONITOR, RETRAIN, RETRAIN_WITH_APPROVAL, ROLLBACK, SCORE, Graph, Stage
from include.retraining.core.records import Decision, DriftResult

GRAPHS = {"retrain": RETRAIN_WITH_APPROVAL, "drift_monitor": MONITOR, "rollback": ROLLBACK, "score": SCORE}
STAGES = [(kind, stage) for kind, graph in GRAPHS.items() for stage in graph.stages]


@pytest.mark.parametrize(("kind", "stage"), STAGES, ids=lambda value: getattr(value, "name", value))
def test_each_stage_takes_the_records_the_graph_hands_it_of_the_types_their_stages_return(kind, stage):
    graph, function = GRAPHS[kind], getattr(stages, stage.name)
    hints = get_type_hints(function)

    records = [name for name in inspect.signature(function).parameters if name not in ("config", "run")]

    assert records == list(stage.takes)
    for record in stage.takes:
        hint, made = hints[record], graph.record_type(record)
        if record in stage.optional:
            assert isinstance(hint, UnionType), f"{stage.name}({record}) is optional, annotated {hint}"
            assert set(get_args(hint)) == {made, NoneType}, f"{stage.name}({record}) is annotated {hint}"
        else:
            assert hint is made, f"{stage.name}({record}) is annotated {hint}, its stage returns {made}"
    if stage.returns:
        assert hints["return"] is stage.returns


def test_every_stage_function_is_in_a_graph():
    assert {name for graph in GRAPHS.values() for name in graph.names} == set(stages.__all__)


def test_a_forced_retrain_runs_the_stages_notify_needs_in_dag_order():
    assert RETRAIN.lineage("notify") == (
        "extract", "validate", "detect_drift", "decide", "train", "evaluate", "refit", "register", "promote", "notify",
    )  # fmt: skip
    assert RETRAIN.producer("final") == "refit"
    assert RETRAIN.record_type("final") is RETRAIN.record_type("training")


def test_the_inputs_of_a_stage_are_the_records_of_the_stages_that_make_them():
    records = {"detect_drift": "the check", "decide": "the decision"}

    assert RETRAIN.inputs("skip", records) == {"drift": "the check", "decision": "the decision"}
    assert RETRAIN.inputs("notify", records)["promotion"] is None  # promote did not run


def test_the_retrain_dag_without_approval_is_the_graph_without_its_step():
    assert set(RETRAIN_WITH_APPROVAL.names) - set(RETRAIN.names) == {"approval_request"}
    assert RETRAIN_WITH_APPROVAL.producer("approval") == "approve"
    assert RETRAIN["promote"].takes == ("registration", "evaluation")
    assert RETRAIN.operators == {}
    assert RETRAIN["notify"] == RETRAIN_WITH_APPROVAL["notify"]


def test_leaving_out_a_task_whose_record_a_stage_needs_is_refused():
    with pytest.raises(ValueError, match=r"stage promote needs \['registration'\], which \('register',\) make"):
        RETRAIN.without("register")


@pytest.mark.parametrize(
    ("stages_", "message"),
    [
        ((Stage("decide", ("drift",), "decision", Decision),), r"decide takes \['drift'\], which no stage before"),
        (
            (Stage("check", gives="drift", returns=DriftResult), Stage("again", gives="drift", returns=DriftResult)),
            "record 'drift' is given twice: by check and again",
        ),
        ((Stage("skip", ("drift",), optional=("decision",)),), r"optional \('decision',\) are not all among"),
    ],
    ids=["taken before it is made", "made twice", "optional but not taken"],
)
def test_a_graph_that_cannot_run_is_refused(stages_, message):
    with pytest.raises(ValueError, match=message):
        Graph(stages_)
