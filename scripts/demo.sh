#!/usr/bin/env bash
# The demo: a whole fine-tuning job on the embedded default (no servers, local files under var/demo).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export TOKENIZERS_PARALLELISM=false
exec .venv/bin/temper demo "$@"
