"""Rollback: move ``champion`` back to the version it replaced, recorded in tags and announced by mail.

The previous champion is the ``previous_champion`` tag the current champion got at registration, so
rolling back twice walks further back. Refused, with the reason, when there is nothing to go back to.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from include.retraining.adapters import mail, registry
from include.retraining.core.config import PipelineConfig
from include.retraining.core.records import Promotion, RunInfo

log = logging.getLogger(__name__)


class RollbackRefused(ValueError):
    """There is no champion, or the champion replaced none."""


def rollback(config: PipelineConfig, run: RunInfo) -> Promotion:
    name = config.model_name
    current = registry.champion(config.mlflow, name)
    if current is None:
        raise RollbackRefused(f"{name} has no champion: there is nothing to roll back")
    tags = registry.version_tags(config.mlflow, name, current.version)
    if tags.get("rolled_back_by") == run.run_id:  # a retry after the alias moved: this run already did it
        return _promotion(current.version, tags)
    previous = tags.get("previous_champion")
    if not previous:
        raise RollbackRefused(
            f"{name} version {current.version} replaced no champion (it was the first): there is no previous "
            "champion to roll back to; register and promote another version instead"
        )
    reason = f"rolled back from version {current.version} to {previous} by {run.dag_id} run {run.run_id}"
    registry.set_version_tags(config.mlflow, name, current.version, {"rolled_back_at": datetime.now(UTC).isoformat()})
    moved = {"rolled_back_from": current.version, "rolled_back_by": run.run_id, "promotion_reason": reason}
    registry.set_version_tags(config.mlflow, name, previous, moved)
    registry.set_champion(config.mlflow, name, previous, reason)
    log.info("%s: %s", name, reason)
    mail.send(
        config.notify.conn_id,
        config.notify.recipients,
        mail.Message(f"[retrain] {name}: {reason}", f"<p>{reason}.</p>"),
    )
    return _promotion(previous, moved)


def _promotion(version: str, tags: dict[str, str]) -> Promotion:
    return Promotion(
        promoted=True,
        champion_version=version,
        previous_champion=tags["rolled_back_from"],
        reason=tags["promotion_reason"],
    )
