"""pyproject.toml lists every package the wheel must carry (listed, because the migrations are mapped in)."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROOT_PACKAGES = ("annotator", "dataset", "model")


def _setuptools() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def _packages_on_disk() -> set[str]:
    found = set()
    for root in ROOT_PACKAGES:
        for init in (REPO / root).rglob("__init__.py"):
            found.add(".".join(init.parent.relative_to(REPO).parts))
    return found


def test_every_package_on_disk_is_listed_for_the_wheel() -> None:
    listed = set(_setuptools()["packages"])
    missing = sorted(_packages_on_disk() - listed)
    assert not missing, f"add {missing} to [tool.setuptools] packages in pyproject.toml, or the wheel lacks them"


def test_every_listed_package_exists() -> None:
    config = _setuptools()
    mapped = config["package-dir"]
    for package in config["packages"]:
        folder = REPO / mapped[package] if package in mapped else REPO.joinpath(*package.split("."))
        assert folder.is_dir(), f"[tool.setuptools] lists {package}, but {folder} does not exist"


def test_the_migrations_are_mapped_from_the_alembic_folder() -> None:
    mapped = _setuptools()["package-dir"]
    assert mapped["annotator._migrations"] == "alembic"
    assert (REPO / mapped["annotator._migrations"] / "env.py").is_file()
    assert mapped["annotator._migrations.versions"] == "alembic/versions"
    assert not (REPO / "alembic" / "__init__.py").exists(), "a package alembic/ would shadow the library"
