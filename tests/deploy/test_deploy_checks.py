"""The static checks that CI runs (scripts/check_deploy.sh) pass on the repository and fail on a
broken template, a compose schema violation (in either file) and a hadolint error; and the chart
renders what an admin relies on."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.check_deploy import CHART, CHART_CI_VALUES, render_chart, rendered_documents
from shared.settings import Settings
from tests.support.stack import REPO_ROOT

CHECK = [sys.executable, str(REPO_ROOT / "scripts" / "check_deploy.py")]


def _check(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CHECK, *arguments], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)


def test_the_repository_passes_every_check() -> None:
    result = _check()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hadolint worker-gpu.Dockerfile" in result.stdout
    assert "compose schema docker-compose.yml + docker-compose.cpu.yml" in result.stdout
    assert "helm temper (gpu-heavy.yaml)" in result.stdout


def test_a_broken_template_fails(tmp_path: Path) -> None:
    chart = tmp_path / "temper"
    shutil.copytree(CHART, chart)
    template = chart / "templates" / "beat.yaml"
    template.write_text(template.read_text().replace("{{- end }}\n", "", 1))

    result = _check("--only", "chart", "--chart", str(chart))

    assert result.returncode == 1
    assert "FAIL  helm temper" in result.stdout


def test_a_manifest_kubernetes_would_refuse_fails(tmp_path: Path) -> None:
    chart = tmp_path / "temper"
    shutil.copytree(CHART, chart)
    template = chart / "templates" / "migrate-job.yaml"
    template.write_text(
        template.read_text().replace("restartPolicy: Never", "restartPolicy: Never\n      hostNetwrk: true")
    )

    result = _check("--only", "chart", "--chart", str(chart))

    assert result.returncode == 1
    assert "Job temper-migrate" in result.stdout and "hostNetwrk" in result.stdout


@pytest.mark.parametrize("broken_file", ["docker-compose.yml", "docker-compose.cpu.yml"])
def test_a_compose_schema_violation_fails(tmp_path: Path, broken_file: str) -> None:
    files = {}
    for name in ("docker-compose.yml", "docker-compose.cpu.yml"):
        files[name] = tmp_path / name
        shutil.copy(REPO_ROOT / name, files[name])
    text = files[broken_file].read_text()
    files[broken_file].write_text(text.replace("  triton:\n", "  triton:\n    restart_policy: always\n", 1))

    result = _check(
        "--only", "compose", "--compose", f"{files['docker-compose.yml']},{files['docker-compose.cpu.yml']}"
    )

    assert result.returncode == 1
    assert "services/triton" in result.stdout and "restart_policy" in result.stdout


def test_a_compose_variable_missing_from_env_example_fails(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "\n".join(
            line
            for line in (REPO_ROOT / ".env.example").read_text().splitlines()
            if "POSTGRES_PASSWORD" not in line
        )
    )

    result = _check("--only", "compose", "--env-file", str(env_file))

    assert result.returncode == 1
    assert "POSTGRES_PASSWORD" in result.stdout


def test_a_hadolint_error_fails(tmp_path: Path) -> None:
    dockerfile = tmp_path / "bad.Dockerfile"
    dockerfile.write_text("FROM python:latest\nRUN apt-get install curl\n")

    result = _check("--only", "dockerfiles", "--dockerfile", str(dockerfile))

    assert result.returncode == 1
    assert "DL3007" in result.stdout  # `latest`


def test_values_schema_rejects_a_bad_value(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "workers": {
                    "gpu": {"image": "worker-gpu", "queues": ["trian"], "concurrency": 1, "replicas": 1}
                }
            }
        )
    )

    result = _check("--only", "chart", "--values", str(values))

    assert result.returncode == 1
    assert "/workers/gpu/queues/0" in result.stdout


# -- what the rendered chart gives an admin ------------------------------------------------------------


def _render(values_file: Path | None) -> list[dict[str, Any]]:
    values = yaml.safe_load(values_file.read_text()) if values_file else None
    return [document for _, document in rendered_documents(render_chart(CHART, values))]


def _deployments(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in documents if doc["kind"] == "Deployment"}


def test_default_install_pins_images_to_the_app_version_and_probes_every_deployment() -> None:
    documents = _render(None)
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    deployments = _deployments(documents)
    assert set(deployments) == {
        "temper-api",
        "temper-worker-cpu",
        "temper-worker-gpu",
        "temper-beat",
        "temper-triton",
    }
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        for container in pod["containers"]:
            assert container["image"].endswith(f":{app_version}"), (name, container["image"])
            assert "livenessProbe" in container and (
                "readinessProbe" in container or "startupProbe" in container
            ), name
            assert container["resources"]["requests"], name
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
    worker_gpu = deployments["temper-worker-gpu"]["spec"]["template"]["spec"]
    assert worker_gpu["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert worker_gpu["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert worker_gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert deployments["temper-beat"]["spec"]["strategy"] == {"type": "Recreate"}
    kinds = {document["kind"] for document in documents}
    assert {"HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceAccount", "Job", "ConfigMap"} <= kinds


def test_migration_hook_has_its_config_and_runs_before_the_release() -> None:
    documents = _render(None)
    hooks = [doc for doc in documents if "helm.sh/hook" in (doc["metadata"].get("annotations") or {})]
    by_kind = {doc["kind"]: doc for doc in hooks}
    assert set(by_kind) == {"ConfigMap", "Job"}  # the Secret is the admin's (existingSecret)
    for doc in hooks:
        assert doc["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    weights = {
        kind: int(doc["metadata"]["annotations"]["helm.sh/hook-weight"]) for kind, doc in by_kind.items()
    }
    assert weights["ConfigMap"] < weights["Job"]
    pod = by_kind["Job"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["command"] == ["temper", "db", "upgrade"]
    assert pod["initContainers"][0]["command"] == ["temper", "storage", "init"]
    assert (
        pod["containers"][0]["envFrom"][0]["configMapRef"]["name"] == by_kind["ConfigMap"]["metadata"]["name"]
    )


def test_the_charts_own_secret_is_a_hook_too_when_it_makes_one() -> None:
    documents = _render(REPO_ROOT / "deploy" / "helm" / "ci" / "trial.yaml")
    secrets = [doc for doc in documents if doc["kind"] == "Secret"]
    hooked = [doc for doc in secrets if "helm.sh/hook" in (doc["metadata"].get("annotations") or {})]
    assert len(secrets) == 2 and len(hooked) == 1
    job = next(doc for doc in documents if doc["kind"] == "Job")
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {item["valueFrom"]["secretKeyRef"]["name"] for item in env} == {hooked[0]["metadata"]["name"]}


@pytest.mark.parametrize(
    "values_file", [None, *CHART_CI_VALUES], ids=lambda path: path.name if path else "default"
)
def test_rendered_configuration_is_what_temper_settings_accept(values_file: Path | None) -> None:
    documents = _render(values_file)
    config = next(
        doc for doc in documents if doc["kind"] == "ConfigMap" and doc["metadata"]["name"].endswith("-config")
    )
    env = {
        key.removeprefix("TEMPER_").lower(): value
        for key, value in config["data"].items()
        if key.startswith("TEMPER_")
    }
    settings = Settings(
        **env,
        database_password="from-the-secret",
        object_store_access_key="from-the-secret",
        object_store_secret_key="from-the-secret",
        api_key_pepper="from-the-secret",
        webhook_secret_keys=["from-the-secret-webhook-key-of-32-characters"],
        _env_file=None,
    )
    assert settings.resolved_database_url.startswith("postgresql://")
    assert settings.triton_reconcile_interval.total_seconds() > 0


def test_gpu_heavy_values_put_each_queue_on_its_pool() -> None:
    documents = _render(REPO_ROOT / "deploy" / "helm" / "ci" / "gpu-heavy.yaml")
    deployments = _deployments(documents)
    train = deployments["temper-worker-train"]["spec"]["template"]["spec"]
    assert train["nodeSelector"] == {"node.example.com/pool": "gpu-h100"}
    assert {toleration["key"] for toleration in train["tolerations"]} == {
        "nvidia.com/gpu",
        "node.example.com/dedicated",
    }
    assert "nodeAffinity" in train["affinity"]
    command = train["containers"][0]["command"]
    assert command[command.index("-Q") + 1] == "train"
    assert train["containers"][0]["image"] == "registry.example.com/ml/temper/worker-gpu:0.1.0"
    triton = deployments["temper-triton"]["spec"]["template"]["spec"]["containers"][0]
    assert "--model-repository=s3://https://s3.example.com:443/temper-models" in triton["command"]
    kinds = {document["kind"] for document in documents}
    assert {"ServiceMonitor", "Ingress"} <= kinds
    # The ServiceMonitor scrapes the port named `metrics`: the API, every worker and Triton have one.
    monitor = next(doc for doc in documents if doc["kind"] == "ServiceMonitor")
    assert [endpoint["port"] for endpoint in monitor["spec"]["endpoints"]] == ["metrics"]
    services = {doc["metadata"]["name"]: doc for doc in documents if doc["kind"] == "Service"}
    assert set(services) == {
        "temper-api",
        "temper-triton",
        *(f"temper-worker-{name}" for name in ("cpu", "evaluate", "train", "export")),
    }
    for name, service in services.items():
        assert "metrics" in {port["name"] for port in service["spec"]["ports"]}, name
    assert sum(1 for doc in documents if doc["kind"] == "PodDisruptionBudget") >= 5
