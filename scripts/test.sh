#!/usr/bin/env bash
# The test command: set up everything (scripts/setup.sh), then run the whole suite, Label Studio
# integration tests included (the suite starts its own server on 127.0.0.1). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export LABEL_STUDIO_BIN="$PWD/.venv-ls/bin/label-studio"
.venv/bin/ruff check --quiet annotator dataset model tests bench alembic
exec .venv/bin/python -m pytest "$@"
