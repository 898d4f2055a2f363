"""What a team asks for when it starts a study: the base spec, how variants are made, the metric.

Variant parameters are named by dotted paths into the job spec (`hyperparameters.learning_rate`).
Grid and search paths are checked against the JobSpec fields up front, because a typo there would
make every variant fail; list overrides are whole partial specs, each validated on its own.
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.jobs.spec import JobSpec
from shared.pipeline.evaluate.metric_names import SUMMARY_METRICS_BY_TASK
from shared.text import Text

# Every variant is a job; past this a study is better split or run as a search.
MAX_VARIANTS = 64

Direction = Literal["maximize", "minimize"]


def check_spec_path(path: str) -> str:
    """Refuse a dotted path that names no field of JobSpec (a typo would fail every variant)."""
    model: type[BaseModel] | None = JobSpec
    for depth, segment in enumerate(path.split(".")):
        if model is None or segment not in model.model_fields:
            known = sorted(model.model_fields) if model is not None else []
            parent = ".".join(path.split(".")[:depth]) or "the job spec"
            raise ValueError(f"'{path}' names no field: {parent} has {known}")
        model = _nested_model(model.model_fields[segment].annotation)
    return path


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model class inside `X`, `X | None` or `Optional[X]`, or None for a plain value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (Union, types.UnionType):
        for argument in typing.get_args(annotation):
            if isinstance(argument, type) and issubclass(argument, BaseModel):
                return argument
    return None


class ListVariants(BaseModel):
    """Explicit variants: each a partial spec (nested, or with dotted keys) laid over the base."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["list"]
    overrides: list[dict[str, Any]] = Field(min_length=1)

    @field_validator("overrides")
    @classmethod
    def _within_limit(cls, overrides: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(overrides) > MAX_VARIANTS:
            raise ValueError(f"{len(overrides)} variants; a study holds at most {MAX_VARIANTS}")
        return overrides


class GridVariants(BaseModel):
    """Every combination of the listed values (cartesian product, in the order given)."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["grid"]
    grid: dict[str, list[Any]] = Field(min_length=1)

    @field_validator("grid")
    @classmethod
    def _known_paths_within_limit(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        size = 1
        for path, values in grid.items():
            check_spec_path(path)
            if not values:
                raise ValueError(f"'{path}' lists no values")
            size *= len(values)
        if size > MAX_VARIANTS:
            raise ValueError(f"the grid makes {size} variants; a study holds at most {MAX_VARIANTS}")
        return grid


class FloatParameter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["float"]
    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _valid_range(self) -> FloatParameter:
        _check_range(self.low, self.high, self.log)
        return self


class IntParameter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["int"]
    low: int
    high: int
    step: int = Field(1, ge=1)
    log: bool = False

    @model_validator(mode="after")
    def _valid_range(self) -> IntParameter:
        _check_range(self.low, self.high, self.log)
        if self.log and self.step != 1:
            raise ValueError("a log-scaled int parameter takes step 1")
        return self


class CategoricalParameter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["categorical"]
    choices: list[str | int | float | bool | None] = Field(min_length=1)


def _check_range(low: float, high: float, log: bool) -> None:
    if low > high:
        raise ValueError(f"low ({low}) is above high ({high})")
    if log and low <= 0:
        raise ValueError(f"a log scale needs low > 0, not {low}")


SearchParameter = Annotated[FloatParameter | IntParameter | CategoricalParameter, Field(discriminator="type")]


class SearchVariants(BaseModel):
    """A budget of trials chosen one after another by Optuna's TPE sampler (seeded)."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["search"]
    space: dict[str, SearchParameter] = Field(min_length=1)
    trials: int = Field(ge=1, le=MAX_VARIANTS)
    seed: int = Field(0, ge=0)

    @field_validator("space")
    @classmethod
    def _known_paths(cls, space: dict[str, Any]) -> dict[str, Any]:
        for path in space:
            check_spec_path(path)
        return space


VariantsSpec = Annotated[ListVariants | GridVariants | SearchVariants, Field(discriminator="mode")]


class StudySpec(BaseModel):
    """A study request. The base spec always runs too, as variant 0, so each change has a reference."""

    model_config = ConfigDict(extra="forbid")

    name: Text | None = Field(None, max_length=200)
    base_spec: JobSpec
    variants: VariantsSpec
    metric: Text = "f1_macro"
    direction: Direction = "maximize"
    max_concurrency: int = Field(2, ge=1, le=8)

    @model_validator(mode="after")
    def _summary_metric_of_the_task(self) -> StudySpec:
        metrics = SUMMARY_METRICS_BY_TASK[self.base_spec.task]
        if self.metric not in metrics:
            raise ValueError(
                f"'{self.metric}' is not an evaluation summary metric of {self.base_spec.task} jobs; "
                f"choose from {list(metrics)}"
            )
        return self

    @property
    def trial_budget(self) -> int:
        """How many variants the study runs beside the base (for a search, its number of trials)."""
        if isinstance(self.variants, ListVariants):
            return len(self.variants.overrides)
        if isinstance(self.variants, GridVariants):
            size = 1
            for values in self.variants.grid.values():
                size *= len(values)
            return size
        return self.variants.trials
