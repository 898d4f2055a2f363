#!/usr/bin/env bash
# The test suite. Needs PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) running; starts its
# own S3-compatible server (moto) on loopback. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

# Headless Chromium renders the HTML evaluation report in a test.
if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = "0" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium is missing; install Debian's 'chromium' package" >&2
  fi
fi

export TOKENIZERS_PARALLELISM=false
# Static checks first: style, the layering contracts (pyproject's [tool.importlinter]), types.
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/lint-imports --no-cache
.venv/bin/mypy

# Deployment files: Dockerfiles (hadolint), compose files (Compose schema), Helm chart (render +
# kubernetes-validate --strict).
./scripts/check_deploy.sh

# The SDK alone: its wheel in a fresh venv (3.11 and 3.12) with its own tests. Before the main suite,
# whose pytest summary must be the last one printed.
./scripts/test_sdk.sh

exec .venv/bin/python -m pytest -q -p no:cacheprovider --timeout=900 "$@"
