"""The SDK's typed models name the same fields as the API's response schemas (from the OpenAPI
document the app serves), so a field renamed or added on one side shows up here."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from services.api.main import create_app
from shared.settings import Settings
from temper_client import types

# SDK model -> the API's schema component it reads.
SCHEMAS: dict[type[BaseModel], str] = {
    types.Team: "Team",
    types.ApiKey: "ApiKey",
    types.ApiKeyIssued: "ApiKeyIssued",
    types.ApiKeyRotated: "ApiKeyRotated",
    types.AuditEvent: "AuditEvent",
    types.AuditPage: "AuditPage",
    types.BaseModelEntry: "BaseModelOut",
    types.Dataset: "Dataset",
    types.Job: "Job",
    types.JobQueue: "JobQueue",
    types.TeamQuota: "TeamQuota",
    types.QueueState: "QueueState",
    types.JobError: "JobError",
    types.JobProgress: "JobProgress",
    types.JobPage: "JobPage",
    types.JobEvent: "JobEvent",
    types.EventPage: "EventPage",
    types.MetricPoint: "MetricPoint",
    types.MetricSeries: "MetricSeries",
    types.ArtifactFile: "CheckpointFile",
    types.Checkpoint: "Checkpoint",
    types.RegisteredModel: "RegisteredModel",
    types.ModelDetail: "ModelDetail",
    types.ModelVersion: "ModelVersion",
    types.Prediction: "Prediction",
    types.PredictResult: "PredictResponse",
    types.StudyVariantError: "StudyVariantError",
    types.StudyVariantChange: "StudyVariantChange",
    types.StudyVariant: "StudyVariant",
    types.StudySummary: "StudySummary",
    types.Study: "Study",
    types.StudyPage: "StudyPage",
    types.Readiness: "ReadyStatus",
    types.Generation: "Generation",
    types.JobDryRun: "JobDryRun",
    types.DryRunBaseModel: "DryRunBaseModel",
    types.DryRunTokens: "DryRunTokens",
    types.DryRunSteps: "DryRunSteps",
    types.DryRunDuration: "DryRunDuration",
    types.DryRunMemory: "DryRunMemory",
    types.TokenizerFit: "TokenizerFit",
    types.ScriptShare: "ScriptShare",
    types.FitWarning: "FitWarning",
    types.WebhookEndpoint: "WebhookEndpoint",
    types.WebhookEndpointCreated: "WebhookEndpointCreated",
    types.WebhookDelivery: "WebhookDelivery",
    types.WebhookDeliveryPage: "WebhookDeliveryPage",
}


@pytest.fixture(scope="module")
def components() -> dict[str, Any]:
    schemas: dict[str, Any] = create_app(Settings(environment="test")).openapi()["components"]["schemas"]
    return schemas


@pytest.mark.parametrize("model", list(SCHEMAS), ids=lambda model: model.__name__)
def test_the_sdk_model_has_the_fields_of_the_api_schema(
    model: type[BaseModel], components: dict[str, Any]
) -> None:
    schema = components[SCHEMAS[model]]
    assert set(model.model_fields) == set(schema["properties"])
    # A field the API always sends may be required by the SDK; one the API may leave out may not.
    optional_in_api = set(schema["properties"]) - set(schema.get("required", []))
    required_in_sdk = {name for name, field in model.model_fields.items() if field.is_required()}
    assert required_in_sdk & optional_in_api == set()


def test_every_response_component_has_an_sdk_model(components: dict[str, Any]) -> None:
    """Request bodies and spec parts are sent as dicts; every other component is read by a model."""
    requests_and_specs = {
        "ApiKeyCreate",
        "BaseModelCreate",
        "ChatMessage",
        "ApiKeyRotate",
        "DistillationSpec",
        "Scope",
        "GenerateRequest",
        "Body_datasets_upload",
        "CategoricalParameter",
        "ErrorDetail",
        "ErrorResponse",
        "EvaluationSpec",
        "ExportSpec",
        "FloatParameter",
        "GateSpec",
        "GridVariants",
        "HealthStatus",
        "Hyperparameters",
        "IntParameter",
        "JobCreate",
        "JobSpec",
        "JobStatus",
        "ListVariants",
        "LoraConfig",
        "PredictRequest",
        "PublishSpec",
        "QueuePause",
        "QuotaUpdate",
        "SearchVariants",
        "StudyCreate",
        "TeamCreate",
        "WebhookCreate",
        "WebhookUpdate",
    }
    read_by_models = set(SCHEMAS.values())
    missing = set(components) - read_by_models - requests_and_specs
    assert missing == set(), f"add SDK models for {sorted(missing)} to temper_client.types"
