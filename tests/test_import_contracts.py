"""The import-linter contracts in pyproject.toml hold, and they catch a wrong import.

`lint-imports` runs in the test command too; this test shows the contracts are not vacuous: the
same configuration, run on a copy of the code with one import pointing up (the pipeline importing
the job layer, or importing SQLAlchemy; the SDK importing server code; a CLI command going around
the SDK), reports the contract broken.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.stack import REPO_ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(REPO_ROOT / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def code_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("code")
    # The SDK is its own distribution (clients/python, a src layout); in the copy it sits beside the
    # server's packages, and PYTHONPATH puts the copy ahead of the installed one.
    for package, source in (
        ("shared", REPO_ROOT / "shared"),
        ("services", REPO_ROOT / "services"),
        ("temper_client", REPO_ROOT / "clients" / "python" / "src" / "temper_client"),
    ):
        shutil.copytree(source, root / package, ignore=shutil.ignore_patterns("__pycache__", "*.jsonl"))
    return root


def test_the_contracts_hold_on_the_code_as_it_is(code_copy: Path) -> None:
    result = lint_imports(code_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "wrong_import", "contract"),
    [
        ("shared/pipeline/spec.py", "import shared.jobs.spec", "Layers"),
        ("shared/data/columns.py", "import shared.registry.service", "Layers"),
        ("shared/pipeline/labels.py", "import sqlalchemy", "know nothing of HTTP, queues or databases"),
        ("temper_client/types.py", "import shared.errors", "imports nothing of the server"),
        ("services/cli/commands/jobs.py", "import httpx", "through the SDK only"),
        ("services/cli/commands/models.py", "import shared.settings", "through the SDK only"),
    ],
)
def test_an_upward_import_breaks_a_contract(
    code_copy: Path, module: str, wrong_import: str, contract: str
) -> None:
    path = code_copy / module
    original = path.read_text()
    try:
        path.write_text(original + f"\n{wrong_import}  # deliberately wrong\n")
        result = lint_imports(code_copy)
    finally:
        path.write_text(original)
    assert result.returncode != 0
    broken = result.stdout[result.stdout.index("Broken contracts") :]
    assert contract in " ".join(broken.split())
    assert wrong_import.split()[-1].split(".")[0] in broken
