"""Static checks of the images: Dockerfile, deploy/mlflow/Dockerfile, .dockerignore, requirements pins.

Nothing is built here (no Docker engine on CI machines): these tests read the files.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_IMAGE = "apache/airflow:3.3.2-python3.12"
PINNED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9_,.-]+\])?==[A-Za-z0-9.+!-]+$")


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined, current = [], ""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        current += " " + stripped.removesuffix("\\").strip() if current else stripped.removesuffix("\\").strip()
        if not stripped.endswith("\\"):
            joined.append(current)
            current = ""
    result = []
    for text in joined:
        keyword, _, args = text.partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


def pins(path: Path) -> dict[str, str]:
    found = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            name, _, version = line.partition("==")
            found[re.sub(r"\[.*\]", "", name).lower()] = version
    return found


def pip_installs(path: Path) -> list[list[str]]:
    commands = []
    for keyword, args in instructions(path):
        if keyword != "RUN":
            continue
        for part in re.split(r"&&|;", args):
            words = shlex.split(part)
            if words[:2] in (["pip", "install"], ["python", "-m"]) and "install" in words:
                commands.append(words[words.index("install") + 1 :])
    return commands


# --------------------------------------------------------------------------------------------------
# Dockerfile (the Airflow image)
# --------------------------------------------------------------------------------------------------


def test_base_image_is_the_pinned_official_airflow_image() -> None:
    froms = [args for keyword, args in instructions(ROOT / "Dockerfile") if keyword == "FROM"]
    assert froms == [AIRFLOW_IMAGE]


def test_base_image_matches_the_requirements_and_python_pins() -> None:
    airflow_version, python = re.fullmatch(r"apache/airflow:([\d.]+)-python(\d+\.\d+)", AIRFLOW_IMAGE).groups()
    assert pins(ROOT / "requirements.txt")["apache-airflow"] == airflow_version
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["requires-python"]
    assert f">={python}" in requires.replace(" ", "")


def test_installs_the_pinned_requirements_as_the_airflow_user() -> None:
    steps = instructions(ROOT / "Dockerfile")
    installs = pip_installs(ROOT / "Dockerfile")
    assert len(installs) == 1, installs
    args = installs[0]
    assert "--no-cache-dir" in args
    requirement_file = args[args.index("-r") + 1]
    copied = [a for k, a in steps if k == "COPY" and a.split()[-1] == requirement_file]
    assert copied, f"{requirement_file} is never copied into the image"
    assert copied[0].split()[-2] == "requirements.txt", "requirements.txt is not what gets installed"
    for spec in (a for a in args if not a.startswith("-") and a != requirement_file):
        # The base image's own Airflow version, repeated so pip refuses to change it.
        assert spec == "apache-airflow==${AIRFLOW_VERSION}" or PINNED.match(spec), spec
    run_index = next(i for i, (k, a) in enumerate(steps) if k == "RUN" and "pip install" in a)
    users = [a for k, a in steps[:run_index] if k == "USER"]
    assert users, "pip must run as the airflow user"
    assert users[-1] == "airflow", "pip must run as the airflow user"


def test_no_unpinned_or_startup_installs() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in text
    assert "--upgrade" not in text
    assert " -U " not in text


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("dags/", "/opt/airflow/dags/"),
        ("plugins/", "/opt/airflow/plugins/"),
        ("include/", "/opt/airflow/include/"),
        ("airflow_settings.yaml", "/opt/airflow/airflow_settings.yaml"),
        ("scripts/apply_settings.py", "/opt/airflow/scripts/apply_settings.py"),
    ],
)
def test_copies_the_project_into_airflow_home(source: str, target: str) -> None:
    copies = [a.split()[-2:] for k, a in instructions(ROOT / "Dockerfile") if k == "COPY"]
    assert [source, target] in copies
    assert (ROOT / source).exists(), f"{source} is copied but missing from the repository"


def test_project_root_is_on_pythonpath_and_the_image_ends_as_airflow() -> None:
    steps = instructions(ROOT / "Dockerfile")
    envs = [a for k, a in steps if k == "ENV"]
    assert "PYTHONPATH=/opt/airflow" in envs
    assert [a for k, a in steps if k == "USER"][-1] == "airflow"
    assert steps[-1] == ("USER", "airflow")


def test_git_sha_build_arg_reaches_the_runtime_environment() -> None:
    """include.retraining.adapters.registry.code_version() reads GIT_SHA in images."""
    steps = instructions(ROOT / "Dockerfile")
    assert ("ARG", 'GIT_SHA=""') in steps
    assert ("ENV", "GIT_SHA=${GIT_SHA}") in steps
    assert steps.index(("ENV", "GIT_SHA=${GIT_SHA}")) > max(i for i, (k, _) in enumerate(steps) if k == "RUN")


def test_dockerfile_mentions_astro_runtime() -> None:
    assert "astro dev start" in (ROOT / "Dockerfile").read_text(encoding="utf-8")


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_context() -> None:
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".local", ".git", ".env", ".pytest_cache", ".ruff_cache"} <= patterns
    assert not {"dags", "plugins", "include", "requirements.txt", "airflow_settings.yaml", "scripts"} & patterns


# --------------------------------------------------------------------------------------------------
# deploy/mlflow/Dockerfile (the MLflow server image)
# --------------------------------------------------------------------------------------------------


def test_mlflow_image_matches_the_client_pin_and_adds_pinned_drivers() -> None:
    path = ROOT / "deploy" / "mlflow" / "Dockerfile"
    froms = [args for keyword, args in instructions(path) if keyword == "FROM"]
    assert froms == [f"ghcr.io/mlflow/mlflow:v{pins(ROOT / 'requirements.txt')['mlflow']}"]
    installed = {spec.split("==")[0].lower(): spec for args in pip_installs(path) for spec in args if "==" in spec}
    assert {"psycopg2-binary", "boto3"} <= set(installed)
    assert installed["boto3"] == f"boto3=={pins(ROOT / 'requirements.txt')['boto3']}"
    for args in pip_installs(path):
        for spec in (a for a in args if not a.startswith("-")):
            assert PINNED.match(spec), f"unpinned: {spec}"


# --------------------------------------------------------------------------------------------------
# Requirements
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["requirements.txt", "requirements-dev.txt"])
def test_every_requirement_is_pinned_exactly(name: str) -> None:
    for number, raw in enumerate((ROOT / name).read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-r "):
            assert (ROOT / line[3:].strip()).is_file(), f"{name}:{number}: {line}"
            continue
        assert PINNED.match(line), f"{name}:{number}: {line!r} is not pinned with =="
