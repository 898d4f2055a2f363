"""The base-model catalog that admins fill, and where a worker finds the weights of an entry."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal

from sqlalchemy.orm import Session

from shared.base_models.repository import BaseModelRepository
from shared.db.models import BaseModelEntry
from shared.errors import Conflict, InvalidInput, NotFound
from shared.storage.base import ObjectStore

TaskFamily = Literal["text-classification", "causal-lm"]
TASK_FAMILIES: tuple[str, ...] = ("text-classification", "causal-lm")
SOURCE_SCHEMES = ("local:", "package:", "store:")


class BaseModelService:
    def __init__(self, session: Session) -> None:
        self.base_models = BaseModelRepository(session)

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
                "source must start with 'local:' (a directory), 'package:' (an installed package that ships "
                "a model) or 'store:' (an object-store prefix)",
                details={"field": "source"},
            )
        if source.startswith(("local:", "package:")):
            # Catch a typo at registration rather than at the first job's validate stage.
            local_model_dir(source)
        if self.base_models.get_by_name(name) is not None:
            raise Conflict(f"a base model named '{name}' already exists", details={"field": "name"})
        return self.base_models.add(
            BaseModelEntry(name=name, task_family=task_family, source=source, description=description)
        )

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
