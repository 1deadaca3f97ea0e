"""``make onboard``: sample a MongoDB collection and write a model config for review.

    python -m include.retraining.onboard --db weather --collection days --label outlook [--timestamp day]
        [--model weather_outlook] [--conn mongo_admin] [--out path.json] [--sample 5000] [--force]

Reads through the mongo adapter as ``--conn`` (an Airflow connection id, e.g. the pipeline's read-only
``mongo_default``, or ``mongo_admin`` for a collection the pipeline may not read yet), infers the config
(``core.onboarding``) and writes ``<models dir>/<model>.json``: ``$RETRAIN_MODELS_DIR`` or
``include/models``, one file per model, the file stem is the model id. JSON has no comments, so what
was inferred and what to check sit in the file's ``_onboarding`` key, which the config loader ignores.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import replace
from pathlib import Path

from include.retraining.adapters import mongo
from include.retraining.airflow.models import KINDS, dag_id
from include.retraining.core.config import SourceConfig
from include.retraining.core.onboarding import CollectionFacts, Onboarding, guess_timestamp_field, propose
from include.retraining.core.onboarding import timestamp_type as infer_timestamp_type

MODELS_DIR = Path(__file__).parents[1] / "models"
SAMPLE_SIZE = 5000
LINE = 110  # characters of a JSON line before it is split


def models_dir() -> Path:
    return Path(os.environ.get("RETRAIN_MODELS_DIR") or MODELS_DIR)


def model_id(name: str) -> str:
    """A DAG-id-safe model id: letters, digits and underscores."""
    return re.sub(r"[^0-9a-zA-Z_]+", "_", name).strip("_").lower()


def collection_facts(source: SourceConfig, label: str, timestamp_field: str | None, size: int) -> CollectionFacts:
    documents = mongo.count_documents(database=source.database, collection=source.collection, conn_id=source.conn_id)
    if not documents:
        raise ValueError(
            f"{source.database}.{source.collection} holds no documents (or {source.conn_id} cannot read it)"
        )
    sample = mongo.sample_documents(source, size)
    field = timestamp_field or guess_timestamp_field(sample, {source.id_field, label})
    if not field:
        raise ValueError("no field of the sample holds timestamps (dates, ISO strings, epoch numbers): pass TIMESTAMP=")
    source = replace(source, timestamp_field=field)
    facts = CollectionFacts(
        database=source.database,
        collection=source.collection,
        documents=documents,
        sample=sample,
        id_types=mongo.id_types(source),
        timestamp_field=field,
        timestamp_types=mongo.stored_types(source),
        earliest=None,
        latest=None,
    )
    typed = replace(source, timestamp_type=infer_timestamp_type(facts)[0])
    earliest, latest = mongo.earliest_timestamp(typed), mongo.latest_timestamp(typed)
    return replace(facts, earliest=earliest, latest=latest, off_form=mongo.off_form(typed)[0])


STACK_ENV = "set -a && source .local/stack.env && set +a"  # what the README runs Airflow commands after


def next_commands(path: Path, onboarding: Onboarding) -> list[str]:
    """What to run next, exactly: the administrator's grant of the new collection to the pipeline's user,
    then the first run at a logical date inside the data. A file outside ``include/models`` is named to both
    (the models folder through ``RETRAIN_MODELS_DIR``, as the DAG factory reads it)."""
    model = onboarding.config["model_name"]
    date = onboarding.run_date or "<a date inside the data>"
    if path.resolve() == (MODELS_DIR / f"{model}.json").resolve():
        grant, folder = f"make mongo-setup MODEL={model}", ""
    else:
        setup = ".venv/bin/python -m include.retraining.adapters.mongo_setup --admin-conn-id mongo_admin"
        grant, folder = f"{STACK_ENV} && {setup} --model-file {path}", f"RETRAIN_MODELS_DIR={path.parent} "
    return [grant, f"{STACK_ENV} && {folder}.venv/bin/airflow dags test retrain_{model} {date}"]


def write(path: Path, onboarding: Onboarding, commands: list[str]) -> None:
    notes = {
        "note": "written by `make onboard`: review the unsure items, then commit this file",
        "inferred": onboarding.inferred,
        "unsure": onboarding.unsure,
        "chosen": onboarding.choices,
        "sample_ranges": onboarding.sample_ranges,
        "next": commands,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(readable_json({"_onboarding": notes, **onboarding.config}) + "\n")


def readable_json(value: object, indent: str = "") -> str:
    """JSON for review: anything that fits on a line stays on one line (a feature, a class list)."""
    inline = json.dumps(value, default=str)
    if len(indent) + len(inline) <= LINE or not isinstance(value, dict | list):
        return inline
    inner = indent + "  "
    if isinstance(value, list):
        items = [inner + readable_json(item, inner) for item in value]
        return "[\n" + ",\n".join(items) + "\n" + indent + "]"
    items = [f"{inner}{json.dumps(key)}: {readable_json(item, inner)}" for key, item in value.items()]
    return "{\n" + ",\n".join(items) + "\n" + indent + "}"


def report(path: Path, onboarding: Onboarding, commands: list[str]) -> str:
    model = onboarding.config["model_name"]
    lines = [f"wrote {path}", "inferred:", *(f"  - {item}" for item in onboarding.inferred)]
    lines += ["chosen:", *(f"  - {item}" for item in onboarding.choices)]
    lines += ["unsure (check before committing):", *(f"  - {item}" for item in onboarding.unsure or ["nothing"])]
    lines += [f"DAGs: {', '.join(dag_id(kind, model) for kind in KINDS)}", "next:"]
    lines += [f"  {number}. {command}" for number, command in enumerate(commands, 1)]
    return "\n".join(lines)


def sampling_denied(error: Exception, args: argparse.Namespace, model: str) -> str | None:
    """A user that may not read the collection yet: the two commands that fix it, in order."""
    fix = (
        f"sample it as MongoDB's administrator (make onboard DB={args.db} COLLECTION={args.collection} "
        f"LABEL={args.label} CONN=mongo_admin), then grant the pipeline's role the model's collections "
        f"(make mongo-setup MODEL={model})"
    )
    return mongo.denied(error, args.conn, {args.db: [args.collection]}, fix)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make onboard", description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--collection", required=True)
    parser.add_argument("--label", required=True)
    parser.add_argument("--timestamp", default=None, help="the timestamp field (default: guessed from the sample)")
    parser.add_argument("--model", default=None, help="the model id (default: the collection's name)")
    parser.add_argument("--conn", default="mongo_default", help="the Airflow connection id to read with")
    parser.add_argument("--out", default=None, help="the config file (default: <models dir>/<model>.json)")
    parser.add_argument("--sample", type=int, default=SAMPLE_SIZE, help="documents to sample")
    parser.add_argument("--force", action="store_true", help="overwrite an existing config file")
    args = parser.parse_args(argv)
    model = model_id(args.model or args.collection)
    path = Path(args.out) if args.out else models_dir() / f"{model}.json"
    if path.exists() and not args.force:
        print(f"onboard: {path} exists: review and edit it, or pass FORCE=1 to overwrite it", file=sys.stderr)
        return 2
    source = SourceConfig(database=args.db, collection=args.collection, conn_id=args.conn)
    try:
        facts = collection_facts(source, args.label, args.timestamp, args.sample)
        onboarding = propose(facts, args.label, model)
    except ValueError as error:
        print(f"onboard: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        if (sentence := sampling_denied(error, args, model)) is None:
            raise
        print(f"onboard: {sentence}", file=sys.stderr)
        return 2
    commands = next_commands(path, onboarding)
    write(path, onboarding, commands)
    print(report(path, onboarding, commands))
    return 0


if __name__ == "__main__":
    sys.exit(main())
