"""A plain `pip install` of the built wheel (not editable) runs `annotator init` and `annotator status`.

The wheel is built offline from a copy of the sources, installed with `--no-deps` into a fresh virtual environment
that has no pip and no annotator, and run from an unrelated folder. The environment borrows the project's installed
dependencies (torch, sqlalchemy, ...) through a `.pth` line naming .venv's site-packages: a path added that way
carries no `.pth` processing, so .venv's editable-install hook for annotator never runs there, and the test asserts
that `annotator` and its migrations are imported from the fresh environment, never from the source tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: What the build reads: the packages, the migrations mapped into them, and the metadata.
BUILD_INPUTS = ("pyproject.toml", "README.md", "alembic", "annotator", "dataset", "model")
TIMEOUT_S = 120

pytestmark = pytest.mark.slow


def _run(args: list[str | Path], *, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(arg) for arg in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert result.returncode == 0, f"{args} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def _pip(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    # pip here is .venv's; no index is consulted (everything the build needs is installed already).
    return _run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], cwd=cwd)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a clean copy of the sources (so no build output lands in the working tree)."""
    source = tmp_path_factory.mktemp("source")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in BUILD_INPUTS:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=ignore)
        else:
            shutil.copy2(path, source / name)
    dist = tmp_path_factory.mktemp("dist")
    _pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "--wheel-dir", dist, source, cwd=source)
    (built,) = dist.glob("annotator-*.whl")
    return built


@pytest.fixture(scope="module")
def fresh_env(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with only the wheel installed (and .venv's dependencies visible)."""
    env_dir = tmp_path_factory.mktemp("fresh") / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", env_dir], cwd=env_dir.parent)
    python = env_dir / "bin" / "python"
    site_packages = Path(
        _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=env_dir).stdout.strip()
    )
    dependencies = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site_packages / "_project_dependencies.pth").write_text("".join(f"{path}\n" for path in sorted(dependencies)))
    _pip("--python", python, "install", "--no-deps", "--no-index", wheel, cwd=env_dir)
    return env_dir


def _clean_env() -> dict[str, str]:
    """The environment minus anything that could point Python or annotator back at the source tree."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "ANNOTATOR_"))}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def test_the_wheel_carries_the_migrations(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    revisions = sorted(path.name for path in (REPO / "alembic" / "versions").glob("*.py"))
    assert "annotator/_migrations/env.py" in names
    assert "annotator/_migrations/script.py.mako" in names
    assert {f"annotator/_migrations/versions/{name}" for name in revisions} <= names
    assert not any(name.startswith("alembic/") for name in names), "the wheel must not shadow the alembic library"


def test_an_installed_wheel_inits_and_reports_from_another_folder(fresh_env: Path, tmp_path: Path) -> None:
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = _clean_env()
    probe = _run(
        [
            fresh_env / "bin" / "python",
            "-c",
            "import annotator; from annotator.store.engine import migrations_dir;"
            "print(annotator.__file__); print(migrations_dir())",
        ],
        cwd=work,
        env=env,
    )
    package_file, migrations = (Path(line) for line in probe.stdout.splitlines())
    assert package_file.is_relative_to(fresh_env), f"annotator imported from {package_file}, not the wheel"
    assert migrations.is_relative_to(fresh_env), f"migrations found at {migrations}, not in the wheel"

    annotator = fresh_env / "bin" / "annotator"
    init = _run([annotator, "--db", "x.db", "init"], cwd=work, env=env)
    assert "Created store" in init.stdout
    assert (work / "x.db").is_file()
    status = _run([annotator, "--db", "x.db", "status"], cwd=work, env=env)
    assert status.stdout.strip()
