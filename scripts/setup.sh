#!/usr/bin/env bash
# Sets up everything on a fresh machine: the project's virtual environment (.venv, with torch from this
# machine's disk), Label Studio's own (.venv-ls; never mixed with the project's dependencies), Debian's
# PostgreSQL server binaries (the test suite starts a throwaway server with them; nothing is started here) and
# Debian's Chromium (the browser test drives it headless).
# Idempotent: a second run only reinstalls when pyproject.toml or this script changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
LS_VERSION=1.23.2
TORCH_SPEC=("torch==2.14.1" "torchvision==0.29.1")

stamp_of() { cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16; }

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$PY" -m venv .venv
fi
if [ "$(cat .venv/.annotator-stamp 2>/dev/null)" != "$(stamp_of)" ]; then
  echo "setup: installing annotator and its dependencies into .venv (torch takes about a minute)" >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v "is ignored" || true
  .venv/bin/python -m pip install -q --disable-pip-version-check "${TORCH_SPEC[@]}" 2>&1 | grep -v "is ignored" || true
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]" 2>&1 | grep -v "is ignored" || true
  .venv/bin/python -c "import annotator, torch, torchvision, osmium, label_studio_sdk, psycopg, mypy, importlinter" \
    || { echo "setup: the project's environment is incomplete (see pip's messages above)" >&2; exit 1; }
  stamp_of > .venv/.annotator-stamp
fi

if [ "$(cat .venv-ls/.annotator-stamp 2>/dev/null)" != "$LS_VERSION" ]; then
  echo "setup: installing label-studio $LS_VERSION into .venv-ls (about a minute)" >&2
  [ -x .venv-ls/bin/python ] || "$PY" -m venv .venv-ls
  .venv-ls/bin/python -m pip install -q --disable-pip-version-check "label-studio==$LS_VERSION" 2>&1 \
    | grep -v "is ignored" || true
  # (not `label-studio --version`: it checks PyPI for a newer release and can hang without a network)
  .venv-ls/bin/python -c "import label_studio" \
    || { echo "setup: label-studio did not install into .venv-ls" >&2; exit 1; }
  echo "$LS_VERSION" > .venv-ls/.annotator-stamp
fi
# PostgreSQL: Debian's server package (initdb, pg_ctl), for the suite's PostgreSQL run. Root only (CI, the dev
# machines); elsewhere say how to get it, as the suite then skips its PostgreSQL half.
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian's postgresql package (for the tests' throwaway server)" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null \
      || { echo "setup: the postgresql package did not install initdb" >&2; exit 1; }
  else
    echo "setup: PostgreSQL is not installed and this is not a root Debian shell; install Debian's postgresql" \
      "package to run the tests' PostgreSQL half (they are skipped without it)" >&2
  fi
fi
# Chromium: Debian's browser, for the test that drives Label Studio's labelling page headless (Playwright from
# PyPI points at it; Playwright's own browser download is never used). Root only, as above; elsewhere that test
# is skipped, saying so.
if ! command -v chromium >/dev/null && [ ! -x /usr/lib/chromium/chromium ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian's chromium package (for the browser test of the labelling page)" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
    [ -x /usr/lib/chromium/chromium ] || command -v chromium >/dev/null \
      || { echo "setup: the chromium package did not install a browser" >&2; exit 1; }
  else
    echo "setup: Chromium is not installed and this is not a root Debian shell; install Debian's chromium" \
      "package (or set ANNOTATOR_CHROMIUM to a Chromium executable) to run the browser test (skipped without it)" >&2
  fi
fi
echo "setup: ready (.venv, .venv-ls, PostgreSQL, Chromium)" >&2
