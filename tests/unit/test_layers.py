"""The tree's layers hold: the core does no I/O and knows no Airflow, each outside system has one home,
and no module imports another in a cycle. Read from the source (every import, lazy ones included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "include" / "retraining"
CLIENTS = ("airflow", "pymongo", "pymongoarrow", "bson", "boto3", "botocore", "mlflow", "smtplib", "jinja2", "skops")
# outside system -> the one adapter allowed to import its client
HOMES = {
    "pymongo": "adapters/mongo.py",
    "pymongoarrow": "adapters/mongo.py",
    "bson": "adapters/mongo.py",
    "airflow.providers.mongo": "adapters/mongo.py",
    "airflow.providers.amazon": "adapters/storage.py",
    "boto3": "adapters/storage.py",
    "mlflow": "adapters/registry/",
    "skops": "adapters/registry/models.py",
    "airflow.providers.smtp": "adapters/mail.py",
    "smtplib": "adapters/mail.py",
    "httpx": "adapters/airflow_api.py",
}
# a layer may import from the layers listed for it (and itself)
ALLOWED = {
    "core": {"core"},
    "adapters": {"core", "adapters"},
    "stages": {"core", "adapters", "stages"},
    "airflow": {"core", "adapters", "stages", "airflow"},
    # `make backtest`, a command on top: replays a history read through the adapters with the core's decisions
    "backtest": {"core", "adapters", "airflow", "backtest"},
}


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[dotted.removesuffix(".__init__")] = path
    return found


def imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 3 or (len(parts) == 3 and parts[2] in ALLOWED) else None


def test_the_package_has_the_known_layers():
    assert {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()} == set(ALLOWED)


@pytest.mark.parametrize("module", [m for m in modules() if layer(m) == "core"])
def test_core_imports_neither_airflow_nor_a_client_library(module):
    used = {name for name in imports(modules()[module]) if name.split(".")[0] in CLIENTS}
    assert used == set(), f"{module} imports {sorted(used)}: the core has no I/O; put it in an adapter"


def test_each_outside_system_is_imported_by_its_adapter_only():
    wrong = []
    for module, path in modules().items():
        relative = path.relative_to(PACKAGE).as_posix()
        for name in imports(path):
            home = next(
                (home for prefix, home in HOMES.items() if name == prefix or name.startswith(prefix + ".")), None
            )
            if home and not (relative == home or (home.endswith("/") and relative.startswith(home))):
                wrong.append(f"{module} imports {name} (its home is {home})")
    assert wrong == []


def test_layers_import_only_downwards():
    wrong = []
    for module, path in modules().items():
        own = layer(module)
        for name in imports(path):
            other = layer(name) if name.startswith("include.retraining.") else None
            if own and other and other not in ALLOWED[own]:
                wrong.append(f"{module} ({own}) imports {name} ({other})")
    assert wrong == []


def test_no_import_cycles():
    known = modules()
    graph = {
        module: {name for name in imports(path) if name in known and name != module} for module, path in known.items()
    }
    # a package's __init__ re-exporting its own modules is not a cycle with them
    graph = {
        m: {d for d in deps if not m.startswith(d + ".") and not d.startswith(m + ".")} for m, deps in graph.items()
    }
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for dependency in sorted(graph[module]):
            if state.get(dependency) == "open":
                pytest.fail("import cycle: " + " -> ".join([*path, module, dependency]))
            if dependency not in state:
                visit(dependency, [*path, module])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
