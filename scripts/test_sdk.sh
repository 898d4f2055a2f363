#!/usr/bin/env bash
# The SDK as a team gets it: build temper-client's wheel from clients/python, install it with pytest
# alone into a fresh venv per Python it supports (3.11, and 3.12), check that nothing of the server
# or the ML stack came with it, and run its own tests (clients/python/tests) against that install.
# Called by scripts/test.sh before the main suite; any failure fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d "${TMPDIR:-/tmp}/temper-sdk.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The interpreters: the one .venv was made from (3.11), and 3.12. CI must test both; elsewhere a
# machine without 3.12 tests 3.11 only and says so.
pythons=("$(.venv/bin/python -c 'import sys; print(sys._base_executable)')")
py312=
# A pyenv shim named python3.12 exists even when it refuses to run: try each candidate.
for candidate in ${PYTHON312:-} "$(command -v python3.12 || true)" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12; do
  if [ -n "$candidate" ] && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
    py312=$candidate
    break
  fi
done
if [ -n "$py312" ]; then
  pythons+=("$py312")
elif [ "${CI:-}" = "true" ]; then
  echo "sdk: python3.12 is missing (set PYTHON312); CI tests the SDK on 3.11 and 3.12" >&2
  exit 1
else
  echo "sdk: no python3.12 here; testing the SDK on 3.11 only"
fi

# Build from a copy of the sources: setuptools builds in the source folder, and a stale build/lib
# there (a module since deleted) would go into the wheel. --no-build-isolation uses .venv's
# setuptools instead of fetching one per run.
mkdir -p "$work/src" "$work/dist"
tar -C clients/python --exclude=build --exclude='*.egg-info' --exclude=__pycache__ -cf - . | tar -C "$work/src" -xf -
.venv/bin/python -m pip wheel --quiet --no-deps --no-build-isolation -w "$work/dist" "$work/src"
wheel=$(ls "$work/dist"/temper_client-*.whl)
echo "sdk: built $(basename "$wheel")"

# Package indexes on disk that are missing are warned about on every install; only errors matter here.
quiet_pip() { "$@" 2>&1 | { grep -v "^WARNING: Location '.*' is ignored" || true; }; return "${PIPESTATUS[0]}"; }

for python in "${pythons[@]}"; do
  version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  venv="$work/venv-$version"
  # No pip inside (bootstrapping it takes seconds per venv): .venv's pip installs into it.
  "$python" -m venv --without-pip "$venv"
  quiet_pip .venv/bin/python -m pip --python "$venv/bin/python" install --quiet "$wheel" pytest==9.0.3
  installed=$(.venv/bin/python -m pip --python "$venv/bin/python" list --format=freeze 2>/dev/null)
  echo "sdk: Python $version, pip list:"
  echo "$installed" | sed 's/^/  /'
  if echo "$installed" | grep -iE '^(torch|transformers|temper)=='; then
    echo "sdk: the SDK's venv holds server or ML packages (above)" >&2
    exit 1
  fi
  # The import must come from the installed wheel, not from a source folder on the path.
  (cd "$work" && "$venv/bin/python" -c '
import sys, temper_client
assert "site-packages" in temper_client.__file__, temper_client.__file__
print(f"sdk: import temper_client {temper_client.__version__} from {temper_client.__file__}")
')
  (cd clients/python && "$venv/bin/python" -m pytest -q -p no:cacheprovider tests)
done
