#!/usr/bin/env bash
# The test command: set up everything (scripts/setup.sh), run the static checks (lint, formatting, types, the
# layer contract of pyproject.toml), then the whole suite, Label Studio integration tests included (the suite
# starts its own server on 127.0.0.1). Extra arguments go to pytest. The first failing check stops the run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export LABEL_STUDIO_BIN="$PWD/.venv-ls/bin/label-studio"
SOURCES=(annotator dataset model tests bench alembic)

echo "test: ruff check" >&2
.venv/bin/ruff check --quiet "${SOURCES[@]}"
echo "test: ruff format --check" >&2
.venv/bin/ruff format --check --quiet "${SOURCES[@]}"
echo "test: mypy annotator dataset model" >&2
.venv/bin/mypy annotator dataset model
echo "test: lint-imports (the layer contract)" >&2
.venv/bin/lint-imports --no-cache --no-logo
echo "test: pytest" >&2
exec .venv/bin/python -m pytest "$@"
