"""The model registry: published versions with lineage, the production alias, and trying a model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from services.api import schemas
from services.api.deps import AuditorDep, ReadDep, SessionDep, SettingsDep, WriteDep
from services.api.openapi import errors
from shared.errors import Conflict, ServiceUnavailable
from shared.registry.service import RegistryService
from shared.registry.triton import published_models
from shared.text import MultilineText

router = APIRouter(prefix="/v1/models", tags=["models"])


class PredictRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"texts": ["my parcel never arrived", "I was charged twice"]}]},
    )
    texts: Annotated[
        list[Annotated[MultilineText, Field(min_length=1, max_length=20_000)]],
        Field(min_length=1, max_length=256),
    ]
    version: int | None = Field(None, ge=1, description="Default: the production version")


def _model_out(model) -> dict[str, Any]:
    return {
        "name": model.name,
        "repository_name": model.repository_name,
        "task": model.task,
        "production_version": model.production_version,
        "created_at": model.created_at,
    }


def _version_out(version) -> dict[str, Any]:
    return {
        "version": version.version,
        "job_id": version.job_id,
        "formats": version.formats,
        "lineage": version.lineage,
        "created_at": version.created_at,
    }


@router.get("", response_model=list[schemas.RegisteredModel], operation_id="models_list", responses=errors())
def list_models(session: SessionDep, principal: ReadDep) -> list[dict[str, Any]]:
    return [_model_out(model) for model in RegistryService(session).list_models(principal.team_id)]


@router.get("/{name}", response_model=schemas.ModelDetail, operation_id="models_get", responses=errors(404))
def get_model(name: str, session: SessionDep, principal: ReadDep) -> dict[str, Any]:
    service = RegistryService(session)
    model = service.get_model(principal.team_id, name)
    versions = service.list_versions(principal.team_id, name)
    return {
        **_model_out(model),
        "versions": [version.version for version in versions],
        "models": published_models(model.repository_name, versions[-1].formats) if versions else [],
    }


@router.get(
    "/{name}/versions",
    response_model=list[schemas.ModelVersion],
    operation_id="models_versions_list",
    responses=errors(404),
)
def list_versions(name: str, session: SessionDep, principal: ReadDep) -> list[dict[str, Any]]:
    return [
        _version_out(version) for version in RegistryService(session).list_versions(principal.team_id, name)
    ]


@router.post(
    "/{name}/versions/{version}/promote",
    response_model=schemas.RegisteredModel,
    operation_id="models_versions_promote",
    responses=errors(403, 404, 422),
)
def promote(
    name: str, version: int, session: SessionDep, principal: WriteDep, audit: AuditorDep
) -> dict[str, Any]:
    """Make `version` the production version; Triton loads it once the change is committed."""
    service = RegistryService(session)
    model, _ = service.get_version(principal.team_id, name, version)
    previous = model.production_version
    service.promote(model, version)
    audit.record("model.promote", "model", name, {"version": version, "previous_version": previous})
    return _model_out(model)


@router.post(
    "/{name}/rollback",
    response_model=schemas.RegisteredModel,
    operation_id="models_rollback",
    responses=errors(403, 404, 409),
)
def rollback(name: str, session: SessionDep, principal: WriteDep, audit: AuditorDep) -> dict[str, Any]:
    """Back to the previous production version; Triton loads it once the change is committed."""
    service = RegistryService(session)
    model = service.get_model(principal.team_id, name)
    previous = model.production_version
    service.rollback(model)
    audit.record(
        "model.rollback", "model", name, {"version": model.production_version, "previous_version": previous}
    )
    return _model_out(model)


@router.post(
    "/{name}/predict",
    response_model=schemas.PredictResponse,
    operation_id="models_predict",
    responses=errors(404, 409, 422, 503),
)
def predict(
    name: str,
    body: PredictRequest,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: ReadDep,
) -> dict[str, Any]:
    """Try a published model: through Triton when configured, else ONNX Runtime on the repository files."""
    service = RegistryService(session)
    model = service.get_model(principal.team_id, name)
    version = body.version or model.production_version
    if version is None:
        raise Conflict(f"model '{name}' has no production version; promote one or pass a version")
    service.get_version(principal.team_id, name, version)
    if settings.triton_url:
        from shared.client.triton import ServingUnavailable, TemperClient

        try:
            with TemperClient(settings.triton_url, model.repository_name, str(version)) as client:
                predictions = client.classify(body.texts)
        except ServingUnavailable as exc:
            raise ServiceUnavailable(f"Triton did not answer: {exc}") from exc
    else:
        runner = request.app.state.local_runners.get(
            model.repository_name, version, request.app.state.model_repository
        )
        predictions = runner.predict(body.texts)
    return {
        "model": name,
        "version": version,
        "predictions": [{"label": p.label, "scores": p.scores} for p in predictions],
    }


class LocalRunners:
    """ONNX Runtime sessions over published versions, one per (model, version), made on first use."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self._runners: dict[tuple[str, int], Any] = {}

    def get(self, repository_name: str, version: int, repository):
        from shared.serving.local_runner import LocalModelRunner

        key = (repository_name, version)
        if key not in self._runners:
            root = self._local_root(repository, repository_name, version)
            self._runners[key] = LocalModelRunner(root, repository_name, version)
        return self._runners[key]

    def _local_root(self, repository, repository_name: str, version: int) -> Path:
        description = repository.description
        if description.startswith("file://"):
            return Path(description.removeprefix("file://"))
        # A bucket: bring the published set down once, keeping the repository's layout.
        root = self.cache_dir / "model_repository"
        for model in published_models(repository_name, ["onnx"]):
            for key in (f"{model}/config.pbtxt", f"{model}/labels.txt"):
                if repository.exists(key):
                    repository.get_file(key, root / key)
            if not (root / model / str(version)).exists():
                repository.download_dir(f"{model}/{version}", root / model / str(version))
        return root
