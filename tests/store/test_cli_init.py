"""`annotator init` through the CLI, and the behaviour every command shares."""

from __future__ import annotations

import subprocess
import sys

import pytest

from annotator.cli import app


@pytest.mark.sqlite_only
def test_init_creates_then_reports_up_to_date(cli, location):
    first = cli("init")
    assert "Created store" in first.stdout
    assert location.sqlite_path.exists() and location.media_dir.is_dir()
    second = cli("init")
    assert "up to date" in second.stdout


def test_a_command_on_a_missing_store_says_to_run_init(cli):
    result = cli("status", expect=None)
    assert result.exit_code != 0
    assert "annotator init" in result.stderr
    assert "Traceback" not in result.output


def _all_commands():
    import typer.main

    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        sub = getattr(command, "commands", None)
        if sub:
            for sub_name in sub:
                yield (name, sub_name)
        else:
            yield (name,)


@pytest.mark.parametrize("command", list(_all_commands()), ids=" ".join)
def test_every_command_has_help_with_an_example(cli, command):
    result = cli(*command, "--help")
    assert "Example" in result.stdout, f"`annotator {' '.join(command)} --help` shows no example"


def test_help_is_fast_because_heavy_libraries_load_lazily():
    heavy = ("torch", "label_studio_sdk", "overpy", "osmium", "shapely", "matplotlib")
    code = f"import sys, annotator.cli; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
