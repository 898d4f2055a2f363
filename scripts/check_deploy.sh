#!/usr/bin/env bash
# Static checks of the deployment files, one verdict (scripts/check_deploy.py says what they are):
# hadolint on every Dockerfile, both compose files against the Compose specification's schema, the
# Helm chart linted, rendered and validated with kubernetes-validate --strict. A missing tool fails.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python scripts/check_deploy.py "$@"
