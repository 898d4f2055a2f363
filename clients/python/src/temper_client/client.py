"""`Temper`: the client object. One per process (it holds a connection pool); close it, or use `with`."""

from __future__ import annotations

import os
from collections.abc import Callable
from types import TracebackType
from typing import Any

import httpx

from temper_client import __version__
from temper_client._http import DEFAULT_API_URL, DEFAULT_TIMEOUT, HttpSession, RetryPolicy
from temper_client.admin import ApiKeys, Audit, BaseModels, Teams
from temper_client.datasets import Datasets
from temper_client.jobs import Jobs
from temper_client.models import Models
from temper_client.queue import Queue
from temper_client.studies import Studies
from temper_client.types import Readiness
from temper_client.webhooks import Webhooks


class Temper:
    """A synchronous client of the Temper REST API.

    `base_url` and `api_key` default to the TEMPER_API_URL and TEMPER_API_KEY environment variables
    (and the URL to http://127.0.0.1:8000, where `temper up` listens).

        with Temper() as temper:
            dataset = temper.datasets.upload("train.jsonl", name="tickets")
            job = temper.jobs.create({"base_model": "minilm", "train_dataset_id": str(dataset.id)})
            for event in temper.jobs.watch(job.id):
                print(event.type, event.message)
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        retry: RetryPolicy = RetryPolicy(),
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        url = base_url or os.environ.get("TEMPER_API_URL") or DEFAULT_API_URL
        key = api_key if api_key is not None else os.environ.get("TEMPER_API_KEY")
        options: dict[str, Any] = {"sleep": sleep} if sleep is not None else {}
        self._http = HttpSession(
            url,
            key,
            timeout=timeout,
            retry=retry,
            transport=transport,
            user_agent=f"temper-client/{__version__}",
            **options,
        )
        self.datasets = Datasets(self._http)
        self.jobs = Jobs(self._http)
        self.models = Models(self._http)
        self.studies = Studies(self._http)
        self.teams = Teams(self._http)
        self.keys = ApiKeys(self._http)
        self.base_models = BaseModels(self._http)
        self.webhooks = Webhooks(self._http)
        self.queue = Queue(self._http)
        self.audit = Audit(self._http)

    @property
    def base_url(self) -> str:
        return self._http.base_url

    def health(self) -> bool:
        """Whether the API process answers (`/healthz`; says nothing of its dependencies)."""
        body: dict[str, Any] = self._http.json("GET", "/healthz")
        return body.get("status") == "ok"

    def ready(self) -> Readiness:
        """Whether the API's database, broker and object store answer (`/readyz`); never retried."""
        response = self._http.request(
            "GET", "/readyz", accept_statuses=frozenset({503}), retry=RetryPolicy(max_retries=0)
        )
        return Readiness.model_validate(response.json())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Temper:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
