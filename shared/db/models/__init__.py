"""All tables, imported here so that Alembic's autogenerate sees every model."""

from shared.db.models.audit import AuditEvent
from shared.db.models.base_model import BaseModelEntry
from shared.db.models.dataset import Dataset
from shared.db.models.dispatch import DispatchState
from shared.db.models.job import Checkpoint, Job, JobEvent, JobMetricPoint
from shared.db.models.registry import ModelPromotion, ModelVersion, RegisteredModel
from shared.db.models.study import Study, StudyVariant
from shared.db.models.team import ApiKey, Team
from shared.db.models.webhook import WebhookDelivery, WebhookEndpoint
from shared.db.models.worker import Worker

__all__ = [
    "ApiKey",
    "AuditEvent",
    "BaseModelEntry",
    "Checkpoint",
    "Dataset",
    "DispatchState",
    "Job",
    "JobEvent",
    "JobMetricPoint",
    "ModelPromotion",
    "ModelVersion",
    "RegisteredModel",
    "Study",
    "StudyVariant",
    "Team",
    "WebhookDelivery",
    "WebhookEndpoint",
    "Worker",
]
