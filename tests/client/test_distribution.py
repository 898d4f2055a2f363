"""The SDK is its own distribution (clients/python) and the server's depends on it: the two stay
installable together, and the SDK keeps to its three runtime dependencies.

The SDK installed alone from its wheel, with its own tests, is scripts/test_sdk.sh (run by
scripts/test.sh); this checks what setup.sh relies on when it installs the folder, then the server.
"""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from typing import Any

from packaging.requirements import Requirement
from setuptools import find_packages

import temper_client
from tests.support.stack import REPO_ROOT

CLIENT = REPO_ROOT / "clients" / "python"


def _project(path: str) -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads((REPO_ROOT / path / "pyproject.toml").read_text())["project"]
    return project


def test_the_server_requires_the_version_of_the_sdk_in_its_folder() -> None:
    requirements = [Requirement(text) for text in _project(".")["dependencies"]]
    (sdk,) = [requirement for requirement in requirements if requirement.name == "temper-client"]
    # A bumped SDK with a stale pin here fails setup.sh: no package index carries temper-client.
    assert sdk.specifier.contains(temper_client.__version__), (str(sdk), temper_client.__version__)
    assert version("temper-client") == temper_client.__version__


def test_the_sdk_is_not_packaged_by_the_server_and_nothing_at_the_root_shadows_it() -> None:
    tool = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]
    server_packages = find_packages(
        where=str(REPO_ROOT), include=tool["setuptools"]["packages"]["find"]["include"]
    )
    assert "services.cli" in server_packages
    assert not [name for name in server_packages if name.startswith("temper_client")]
    # A src layout: a temper_client folder at the root would be imported instead of the installed one.
    assert not (REPO_ROOT / "temper_client").exists()
    assert temper_client.__file__ == str(CLIENT / "src" / "temper_client" / "__init__.py")


def test_the_sdk_depends_on_httpx_httpx_sse_and_pydantic_only() -> None:
    sdk = [Requirement(text) for text in _project("clients/python")["dependencies"]]
    assert {requirement.name for requirement in sdk} == {"httpx", "httpx-sse", "pydantic"}
    # Where the server pins one of them exactly, the SDK's range admits that pin (one venv holds both).
    server = {Requirement(text).name: Requirement(text) for text in _project(".")["dependencies"]}
    checked = 0
    for requirement in sdk:
        for pin in server[requirement.name].specifier:
            if pin.operator == "==":
                assert requirement.specifier.contains(pin.version), (str(requirement), pin.version)
                checked += 1
    assert checked >= 2  # httpx and httpx-sse
