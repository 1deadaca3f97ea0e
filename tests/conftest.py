"""Fixtures shared by the unit tests: the default configuration and frames shaped like an extract.

Imports stay inside the fixtures: this file is also loaded for tests/dags and tests/static, which must
not pay for pandas or scikit-learn.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import pandas as pd

    from include.retraining.core.config import ContractConfig, PipelineConfig

WINDOW_START = datetime(2024, 1, 1, tzinfo=UTC)
WINDOW_END = datetime(2024, 2, 1, tzinfo=UTC)


def as_extracted(frame: pd.DataFrame, contract: ContractConfig, id_field: str = "_id") -> pd.DataFrame:
    """What ``mongo.read_window`` returns for these documents: an id column, numbers as float64 and
    values of the wrong type as nulls (pymongoarrow's ``allow_invalid``)."""
    import pandas as pd

    extracted = frame.copy()
    extracted.insert(0, id_field, [f"doc-{i:05d}" for i in range(len(frame))])
    for name in [*contract.numeric_features, contract.label.name]:
        extracted[name] = pd.to_numeric(extracted[name], errors="coerce").astype("float64")
    for name in contract.categorical_features:
        column = extracted[name]
        extracted[name] = column.where(column.map(lambda value: isinstance(value, str)), None).astype(object)
    return extracted


@pytest.fixture(scope="session")
def default_config() -> PipelineConfig:
    from include.retraining.core.config import load_config

    return load_config()


@pytest.fixture(scope="session")
def make_frame(default_config: PipelineConfig) -> Callable[..., pd.DataFrame]:
    """``make_frame(rows, seed=..., covariate_drift=..., concept_drift=..., malformed_share=...)``."""
    from include.demo.sample_data import generate_frame

    def make(rows: int, **knobs: float) -> pd.DataFrame:
        frame = generate_frame(rows, start=WINDOW_START, end=WINDOW_END, **knobs)
        return as_extracted(frame, default_config.contract)

    return make
