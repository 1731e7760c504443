#!/usr/bin/env bash
# The test command: set up everything (scripts/setup.sh), run the static checks (lint, formatting, types, the
# layer contract of pyproject.toml), then the whole suite, Label Studio integration tests included (the suite
# starts its own server on 127.0.0.1), the store-backed tests on SQLite and on a throwaway PostgreSQL server the
# suite starts (tests/pgserver.py). Extra arguments go to pytest. The first failing check stops the run.
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
# OpenMP threads that spin while waiting cost torch most of its time on a busy 2-core machine (measured: a planted
# out-of-fold run 65 s with spinning threads, 18 s passive); passive waiting changes no result.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
exec .venv/bin/python -m pytest "$@"
