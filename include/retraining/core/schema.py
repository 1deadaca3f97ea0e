"""The JSON Schema of a model file, generated from the typed configuration (``make config-schema``).

A model file is deep-merged over ``configs/defaults.json``, so a key the defaults supply is optional in
the file even where the merged configuration requires it. Keys starting with ``_`` are comments.
Editors validate ``include/models/*.json`` against the committed schema (``.vscode/settings.json``);
``tests/unit/test_config_schema.py`` keeps it equal to what the code generates.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from dataclasses import is_dataclass
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

from pydantic import TypeAdapter

from include.retraining.core.config import DEFAULTS_FILE, PipelineConfig

SCHEMA_FILE = Path(__file__).parents[1] / "configs" / "model.schema.json"
COMMENT_KEYS = {"^_": {"description": "a comment: ignored by the pipeline"}}


def model_file_schema() -> dict[str, Any]:
    schema = TypeAdapter(PipelineConfig).json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Retraining model file (include/models/<model>.json)"
    _relax(PipelineConfig, schema, schema.get("$defs", {}), json.loads(DEFAULTS_FILE.read_text()))
    for target in [schema, *schema.get("$defs", {}).values()]:
        if target.get("type") == "object":
            target["patternProperties"] = COMMENT_KEYS
    return schema


def _relax(cls: type, target: dict[str, Any], definitions: dict[str, Any], defaults: Mapping[str, Any]) -> bool:
    """Drop from ``cls``'s required keys those the shared defaults supply in full; True if any stays required."""
    hints = get_type_hints(cls)
    required = []
    for key in target.get("required", []):
        section = _section_class(hints[key])
        supplied = isinstance(defaults.get(key), Mapping) if section else key in defaults
        if section and supplied:
            supplied = not _relax(section, definitions[section.__name__], definitions, defaults[key])
        if not supplied:
            required.append(key)
    for key, value in defaults.items():  # optional sections the defaults fill (performance) are relaxed too
        section = _section_class(hints.get(key))
        if section and key not in target.get("required", []) and isinstance(value, Mapping):
            _relax(section, definitions[section.__name__], definitions, value)
    if required:
        target["required"] = required
    else:
        target.pop("required", None)
    return bool(required)


def _section_class(hint: Any) -> type | None:
    if get_origin(hint) in (Union, UnionType):
        hint = next((arg for arg in get_args(hint) if arg is not type(None)), None)
    return hint if is_dataclass(hint) else None


def render() -> str:
    return json.dumps(model_file_schema(), indent=2, sort_keys=True) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SCHEMA_FILE)
    args = parser.parse_args()
    args.out.write_text(render())
    print(f"config-schema: wrote {args.out}")


if __name__ == "__main__":
    main()
