"""Generate with a published causal LM from the repository files, without Triton.

The embedded default has no Triton; `POST /v1/models/{name}/generate` streams from the same files
Triton would serve: the version's ONNX Runtime GenAI model, tokenizer and chat template, and the
generation settings in the model's config.pbtxt, through the same generation core
(`python_backend/genai_stream.py`) that the Triton model.py runs. So the template, the stop rules
and the chunks are the same on both paths.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shared.errors import InvalidInput, NotFound
from shared.serving.python_backend.genai_stream import (
    GenAIGenerator,
    GenerationChunk,
    GenerationRequest,
    RequestError,
)
from shared.serving.triton_repository import CONFIG_FILENAME, GENAI_SUBDIR, read_model_config


class LocalGenerationRunner:
    """Load version `version` of causal LM `name` once; `stream` may then be called many times.

    One generation runs at a time per runner, as on one Triton instance: on a few CPU cores two
    at once would only share the same cores.
    """

    def __init__(self, repo_root: Path, name: str, version: int, threads: int | None = None) -> None:
        model_dir = repo_root / name
        genai_dir = model_dir / str(version) / GENAI_SUBDIR
        if not (genai_dir / "genai_config.json").is_file() or not (model_dir / CONFIG_FILENAME).is_file():
            raise NotFound(
                f"model {name!r} has no published generation version {version}",
                details={"model": name, "version": version},
            )
        parameters = {
            key: value.string_value for key, value in read_model_config(model_dir).parameters.items()
        }
        self.name = name
        self.version = version
        self.precision = parameters.get("precision", "")
        self.default_max_new_tokens = int(parameters.get("default_max_new_tokens", "256"))
        self.max_new_tokens_limit = int(parameters.get("max_new_tokens_limit", "1024"))
        configured_threads = int(parameters.get("threads", "0")) or None
        self.generator = GenAIGenerator(genai_dir, threads=threads or configured_threads)
        self._lock = threading.Lock()

    def parse(self, request: dict[str, Any]) -> GenerationRequest:
        """The request checked against this model's limits; a bad one is a 422 naming what is wrong."""
        try:
            return GenerationRequest.from_json(
                request, self.default_max_new_tokens, self.max_new_tokens_limit
            )
        except RequestError as error:
            raise InvalidInput(str(error), details={"model": self.name}) from error

    def stream(self, request: dict[str, Any] | GenerationRequest) -> Iterator[GenerationChunk]:
        """Chunks of the answer as they are generated; the last carries the finish reason.

        Iterate it in a worker thread (the SSE route: `iterate_in_threadpool`), since each step
        runs the model. Closing the iterator early stops the generation.
        """
        parsed = request if isinstance(request, GenerationRequest) else self.parse(request)
        with self._lock:
            try:
                yield from self.generator.stream(parsed)
            except RequestError as error:
                raise InvalidInput(str(error), details={"model": self.name}) from error

    def generate(self, request: dict[str, Any] | GenerationRequest) -> GenerationChunk:
        """The whole answer: every chunk joined, with the finish reason and token count."""
        pieces = list(self.stream(request))
        return GenerationChunk(
            text="".join(piece.text for piece in pieces),
            finish_reason=pieces[-1].finish_reason,
            tokens=pieces[-1].tokens,
        )


class LocalGenerationRunners:
    """Generation runners over published versions, one per (model, version), made on first use.

    `repository` is the configured model repository (an object store): a `file://` one is read in
    place; from a bucket, the model's config and the version folder are brought down once into
    `cache_dir`, keeping the repository's layout.
    """

    def __init__(self, cache_dir: Path, threads: int | None = None) -> None:
        self.cache_dir = cache_dir
        self.threads = threads
        self._runners: dict[tuple[str, int], LocalGenerationRunner] = {}
        self._lock = threading.Lock()

    def get(self, repository_name: str, version: int, repository: Any) -> LocalGenerationRunner:
        key = (repository_name, version)
        with self._lock:
            if key not in self._runners:
                root = self._local_root(repository, repository_name, version)
                self._runners[key] = LocalGenerationRunner(root, repository_name, version, self.threads)
            return self._runners[key]

    def _local_root(self, repository: Any, repository_name: str, version: int) -> Path:
        description = repository.description
        if description.startswith("file://"):
            return Path(description.removeprefix("file://"))
        root = self.cache_dir / "model_repository"
        config_key = f"{repository_name}/{CONFIG_FILENAME}"
        if repository.exists(config_key):
            repository.get_file(config_key, root / config_key)
        final = root / repository_name / str(version)
        if not final.exists():
            # Downloaded beside its final place and renamed: a crash leaves no half version behind.
            final.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=".download-"))
            try:
                repository.download_dir(f"{repository_name}/{version}", staging)
                os.rename(staging, final)
            finally:
                if staging.exists():
                    shutil.rmtree(staging)
        return root
