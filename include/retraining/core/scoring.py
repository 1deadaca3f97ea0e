"""Served predictions: what the champion answered for a document, one record per (document, version).

A prediction's ``_id`` is made of the model, the version and the document id, so writing it twice is
refused by the collection itself and a retried or repeated score run writes nothing new. ``score`` is the
model's output as the objective's metrics read it (``core.evaluation.predict``: the positive class's
probability, the class probabilities in ``contract.label.classes`` order, or the predicted value), so
performance drift can compute its metric from what was served; ``prediction`` is the decision a consumer
reads (the class at a 0.5 threshold for binary, the most probable class for multiclass, the value).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from include.retraining.core.config import LabelSpec


def prediction_id(model_name: str, version: str, document_id: str) -> str:
    return f"{model_name}|v{version}|{document_id}"


def decisions(scores: np.ndarray, label: LabelSpec) -> list[Any]:
    """The answer each score stands for, as a plain JSON value of the label's kind."""
    if not label.is_classification:
        return [float(value) for value in scores]
    classes = list(label.classes)
    if label.objective == "binary":
        negative = next(value for value in classes if value != label.positive_class)
        return [label.positive_class if value >= 0.5 else negative for value in scores]
    return [classes[index] for index in np.argmax(scores, axis=1)]


def prediction_documents(
    document_ids: Iterable[str],
    scores: np.ndarray,
    label: LabelSpec,
    model_name: str,
    version: str,
    scored_at: datetime,
) -> list[dict[str, Any]]:
    """One prediction document per scored document, in the order of ``document_ids``."""
    answers = decisions(scores, label)
    served = scores.tolist()  # a float per row, or the class probabilities
    return [
        {
            "_id": prediction_id(model_name, version, document_id),
            "model_name": model_name,
            "model_version": version,
            "document_id": document_id,
            "prediction": answer,
            "score": value,
            "scored_at": scored_at,
        }
        for document_id, answer, value in zip(document_ids, answers, served, strict=True)
    ]


def served_scores(
    document_ids: pd.Series, served: Mapping[str, Any], label: LabelSpec
) -> tuple[np.ndarray, np.ndarray]:
    """The served ``score`` of each document that has one (by prediction ``_id`` in ``served``), as the array
    ``core.evaluation.predict`` would give, and the mask of the documents that have one."""
    found = document_ids.map(lambda document_id: document_id in served).to_numpy(dtype=bool)
    values = [served[document_id] for document_id in document_ids[found]]
    if label.objective == "multiclass":
        return np.asarray(values, dtype=float).reshape(len(values), len(label.classes)), found
    return np.asarray(values, dtype=float), found
