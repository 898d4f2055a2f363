"""Thin control of a Triton server over gRPC: readiness and explicit model loading.

Used when a Triton URL is configured. Triton runs with `--model-control-mode=explicit`, so a newly
uploaded version serves only once it is loaded here, and a rollback is a load with the previous
version pinned through a config override.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from google.protobuf import json_format
from tritonclient.grpc import InferenceServerClient, InferenceServerException
from tritonclient.grpc import model_config_pb2 as mc

from shared.errors import TransientError


@dataclass(frozen=True)
class RepositoryEntry:
    name: str
    version: str
    state: str
    reason: str


class TritonControl:
    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.client = InferenceServerClient(url=url)

    def is_ready(self) -> bool:
        try:
            return bool(self.client.is_server_ready(client_timeout=self.timeout_s))
        except InferenceServerException:
            return False

    def is_model_ready(self, name: str, version: str = "") -> bool:
        return bool(self.client.is_model_ready(name, version, client_timeout=self.timeout_s))

    def load_model(self, name: str, config_override: mc.ModelConfig | None = None) -> None:
        """Load (or reload) `name`; an override replaces the repository's config.pbtxt for this load."""
        config_json = (
            json.dumps(json_format.MessageToDict(config_override, preserving_proto_field_name=True))
            if config_override is not None
            else None
        )
        self._call(self.client.load_model, name, config=config_json, client_timeout=self.timeout_s)

    def load_version(self, name: str, config: mc.ModelConfig, version: int) -> None:
        """Serve exactly `version` of `name` (promote or roll back) by pinning its version policy."""
        pinned = mc.ModelConfig()
        pinned.CopyFrom(config)
        pinned.version_policy.CopyFrom(
            mc.ModelVersionPolicy(specific=mc.ModelVersionPolicy.Specific(versions=[version]))
        )
        self.load_model(name, pinned)

    def unload_model(self, name: str, unload_dependents: bool = False) -> None:
        self._call(
            self.client.unload_model,
            name,
            unload_dependents=unload_dependents,
            client_timeout=self.timeout_s,
        )

    def repository_index(self) -> list[RepositoryEntry]:
        index = self._call(self.client.get_model_repository_index, client_timeout=self.timeout_s)
        return [
            RepositoryEntry(name=model.name, version=model.version, state=model.state, reason=model.reason)
            for model in index.models
        ]

    def close(self) -> None:
        self.client.close()

    def _call(self, method, *args, **kwargs):
        try:
            return method(*args, **kwargs)
        except InferenceServerException as error:
            if error.status() in ("StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED"):
                raise TransientError(f"Triton at {self.url} is unreachable: {error.message()}") from error
            raise
