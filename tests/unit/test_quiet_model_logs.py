"""Saving or loading a model does not flood the task log with Airflow's deprecated-import warnings."""

from __future__ import annotations

import warnings

import pytest


def test_skops_module_lookups_raise_no_airflow_deprecation_warnings():
    import airflow.serialization.serde  # noqa: F401  a module with deprecated-import shims, loaded in every task
    from skops.io._utils import whichmodule

    from include.retraining.adapters.registry import quiet_skops_lookups

    unknown = object()  # found in no module, so the lookup asks every loaded module, as for a model's functions

    with warnings.catch_warnings(record=True) as unfiltered:
        warnings.simplefilter("always")
        whichmodule(unknown, "xlogy")
    if not any(issubclass(w.category, FutureWarning) for w in unfiltered):
        pytest.skip("this Airflow has no deprecated-import shims that answer skops' lookups")

    with warnings.catch_warnings(record=True) as quiet:
        warnings.simplefilter("always")
        with quiet_skops_lookups():
            whichmodule(unknown, "xlogy")

    assert [w for w in quiet if issubclass(w.category, FutureWarning)] == []
