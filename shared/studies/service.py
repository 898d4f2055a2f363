"""The rules of studies: how variants become jobs, how many run at once, when a study is done.

A study is advanced whenever one of its jobs finishes (the worker sends `studies.advance`) and once
when it is created. Advancing submits pending variants while fewer than `max_concurrency` of the
study's jobs are unfinished, asks the search sampler for new trials while the budget lasts, and
closes the study with its ranking once every variant has finished. It is safe to run twice, at the
same time too: the study row is locked on Postgres, and each variant's job is submitted under an
idempotency key, so a second submission finds the first job instead of making another. The jobs it
submits are enqueued by the outbox after the commit.
"""

from __future__ import annotations

import builtins
import uuid
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from shared.db.models import Job, Study, StudyVariant
from shared.db.pagination import decode_cursor, encode_cursor
from shared.db.session import session_scope
from shared.errors import IllegalTransition, InvalidInput, NotFound
from shared.jobs.service import JobService
from shared.jobs.spec import JobSpec
from shared.jobs.states import TERMINAL, JobStatus
from shared.studies.ranking import finished_values, metric_value, rank
from shared.studies.repository import StudyRepository, VariantRow
from shared.studies.search import TrialRecord, next_trial_params
from shared.studies.spec import SearchVariants, StudySpec
from shared.studies.variants import deep_merge, lookup, plan_variant, plan_variants
from shared.webhooks.service import WebhookService

RUNNING = "running"
STUDY_TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
# Two advances racing on SQLite (no row locks) can collide on a variant position or a job's
# idempotency key; the loser starts over and then sees the winner's rows.
ADVANCE_ATTEMPTS = 3


def is_unfinished(job: Job | None) -> bool:
    return job is not None and JobStatus(job.status) not in TERMINAL


def is_pending(variant: StudyVariant) -> bool:
    """A valid variant that has no job yet (waiting for one of the study's slots)."""
    return variant.job_id is None and variant.error is None


class StudyService:
    def __init__(self, session: Session, gpu_workers: bool = False) -> None:
        self.session = session
        self.studies = StudyRepository(session)
        self.jobs = JobService(session, gpu_workers=gpu_workers)

    # Creation -------------------------------------------------------------------------------------

    def create(self, team_id: uuid.UUID, spec: StudySpec) -> Study:
        """Store the study and its variants and submit the first jobs."""
        if spec.base_spec.evaluation is None:
            raise InvalidInput(
                "base_spec.evaluation must not be null: variants are ranked by an evaluation metric",
                details={"field": "base_spec.evaluation"},
            )
        study = self.studies.add(
            Study(
                team_id=team_id,
                name=spec.name,
                status=RUNNING,
                base_spec=spec.base_spec.model_dump(mode="json"),
                variants_spec=spec.variants.model_dump(mode="json"),
                metric=spec.metric,
                direction=spec.direction,
                max_concurrency=spec.max_concurrency,
                trial_budget=spec.trial_budget,
                result={},
            )
        )
        if isinstance(spec.variants, SearchVariants):
            plans = [plan_variant(spec.base_spec, {})]  # trials are asked as slots free up
        else:
            plans = plan_variants(spec.base_spec, spec.variants)
        for position, plan in enumerate(plans):
            self.studies.add_variant(
                StudyVariant(study_id=study.id, position=position, overrides=plan.overrides, error=plan.error)
            )
        self._advance(study)
        return study

    # Advancing ------------------------------------------------------------------------------------

    def advance(self, study_id: uuid.UUID) -> None:
        """Submit what may run now and close the study when all is done."""
        study = self.studies.get(study_id, for_update=True)
        if study is None or study.status in STUDY_TERMINAL:
            return
        self._advance(study)

    def _advance(self, study: Study) -> None:
        rows = self.studies.variants_with_jobs(study.id)
        if study.variants_spec.get("mode") == "search":
            rows = self._ask_trials(study, rows)
        # Up to max_concurrency variants are submitted at once; the team's quotas are the
        # dispatcher's business (a variant's job over them waits queued like any other).
        unfinished = sum(1 for _, job in rows if is_unfinished(job))
        for variant, job in rows:
            if unfinished >= study.max_concurrency:
                break
            if job is not None or not is_pending(variant):
                continue
            spec = JobSpec.model_validate(_merged_spec(study, variant))
            try:
                outcome = self.jobs.submit(
                    study.team_id,
                    spec,
                    name=f"{study.name or 'study'} #{variant.position}",
                    idempotency_key=f"study:{study.id}:{variant.position}",
                    study_id=study.id,
                )
            except InvalidInput as exc:
                variant.error = exc.message  # e.g. a dataset of the base spec was deleted meanwhile
                continue
            variant.job_id = outcome.job.id
            unfinished += 1
        self.session.flush()
        self._close_if_done(study, self.studies.variants_with_jobs(study.id))

    def _ask_trials(self, study: Study, rows: list[VariantRow]) -> list[VariantRow]:
        """New search trials while the budget lasts and a slot would be free to run them."""
        search = SearchVariants.model_validate(study.variants_spec)
        base_spec = JobSpec.model_validate(study.base_spec)
        rows = list(rows)
        waiting = sum(1 for variant, job in rows if is_unfinished(job) or is_pending(variant))
        while len(rows) - 1 < study.trial_budget and waiting < study.max_concurrency:
            history = [_trial_record(search, study.metric, variant, job) for variant, job in rows[1:]]
            plan = plan_variant(base_spec, next_trial_params(search, study.direction, history))
            variant = self.studies.add_variant(
                StudyVariant(
                    study_id=study.id, position=len(rows), overrides=plan.overrides, error=plan.error
                )
            )
            rows.append((variant, None))
            if plan.error is None:
                waiting += 1
        return rows

    def _close_if_done(self, study: Study, rows: list[VariantRow]) -> None:
        asked_all = study.variants_spec.get("mode") != "search" or len(rows) - 1 >= study.trial_budget
        if not asked_all or any(is_pending(variant) or is_unfinished(job) for variant, job in rows):
            return
        study.result = ranking_result(study, rows)
        # A failed variant does not fail the study; a study where no variant produced the metric does.
        study.status = "succeeded" if study.result["ranking"] else "failed"
        WebhookService(self.session).study_finished(study)

    # Reads and cancel -----------------------------------------------------------------------------

    def get(self, team_id: uuid.UUID, study_id: uuid.UUID) -> Study:
        study = self.studies.get_for_team(team_id, study_id)
        if study is None:
            raise NotFound(f"study {study_id} not found")
        return study

    def list(
        self, team_id: uuid.UUID, cursor: str | None, limit: int
    ) -> tuple[builtins.list[Study], str | None]:
        """The team's studies, newest first, a page at a time."""
        before = decode_cursor(cursor) if cursor else None
        studies = self.studies.list_for_team(team_id, before=before, limit=limit + 1)
        last = studies[limit - 1] if len(studies) > limit else None
        return studies[:limit], encode_cursor(last.created_at, last.id) if last else None

    def variant_counts(self, studies: builtins.list[Study]) -> dict[uuid.UUID, int]:
        return self.studies.variant_counts([study.id for study in studies])

    def variants(self, study: Study) -> builtins.list[VariantRow]:
        return self.studies.variants_with_jobs(study.id)

    def cancel(self, team_id: uuid.UUID, study_id: uuid.UUID) -> Study:
        """Cancel every unfinished job of the study; pending variants are never submitted."""
        study = self.get(team_id, study_id)
        if study.status in STUDY_TERMINAL:
            raise IllegalTransition(
                f"study {study_id} has already finished ({study.status}); nothing to cancel",
                details={"status": study.status},
            )
        rows = self.studies.variants_with_jobs(study.id)
        for _, job in rows:
            if job is not None and is_unfinished(job):
                self.jobs.request_cancel(team_id, job.id)
        study.status = "cancelled"
        study.result = ranking_result(study, rows)
        WebhookService(self.session).study_finished(study)
        self.session.flush()
        return study


def ranking_result(study: Study, rows: list[VariantRow]) -> dict[str, Any]:
    """The stored outcome: finished variants with the metric, best first."""
    values = finished_values(rows, study.metric)
    ranks = rank(values, study.direction)
    jobs = {variant.position: job.id for variant, job in rows if job is not None}
    ranking = sorted(
        (
            {"position": position, "job_id": str(jobs[position]), "value": value, "rank": ranks[position]}
            for position, value in values.items()
        ),
        key=lambda entry: (entry["rank"], entry["position"]),
    )
    return {"metric": study.metric, "direction": study.direction, "ranking": ranking}


def _merged_spec(study: Study, variant: StudyVariant) -> dict[str, Any]:
    return deep_merge(study.base_spec, variant.overrides)


def _trial_record(search: SearchVariants, metric: str, variant: StudyVariant, job: Job | None) -> TrialRecord:
    params = {path: lookup(variant.overrides, path) for path in search.space}
    if variant.error is not None:
        return TrialRecord(params=params, outcome="failed")
    if job is None or is_unfinished(job):
        return TrialRecord(params=params, outcome="running")
    value = metric_value(job.result, metric) if job.status == JobStatus.SUCCEEDED else None
    if value is None:
        return TrialRecord(params=params, outcome="failed")
    return TrialRecord(params=params, outcome="complete", value=value)


def advance_study(
    session_factory: sessionmaker[Session],
    study_id: uuid.UUID,
    gpu_workers: bool = False,
) -> None:
    """Advance one study in its own transaction (its new jobs are enqueued after the commit)."""
    for attempt in range(1, ADVANCE_ATTEMPTS + 1):
        try:
            with session_scope(session_factory) as session:
                StudyService(session, gpu_workers).advance(study_id)
            return
        except IntegrityError:
            if attempt == ADVANCE_ATTEMPTS:
                raise
