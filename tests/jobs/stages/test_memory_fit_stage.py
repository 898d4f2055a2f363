"""The train stage's memory check on the worker it got (`shared.jobs.stages.memory`): it also gives a
catalog row registered before shapes were kept the shape read from the model's files, so submit
checks the next job on that model at once."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from shared.db.models import BaseModelEntry
from shared.jobs.memory_fit import catalog_shape, model_shape
from shared.jobs.run import JobRun
from shared.jobs.stages.memory import fit_to_worker
from tests.support.job_rows import job_database


def test_a_row_without_a_shape_gets_the_one_the_train_stage_read(
    tmp_path: Path, tiny_base_model: Path
) -> None:
    db = job_database(tmp_path, tiny_base_model)
    with db.session() as session:
        (entry,) = session.query(BaseModelEntry).all()
        assert entry.shape is None  # as rows registered before shapes were kept
    job_id = db.submit()
    run = JobRun(db.context, job_id, "train")
    assert not run.inputs.base_model.has_shape

    hyperparameters, chosen = fit_to_worker(run, tiny_base_model)

    assert (
        chosen is None and hyperparameters.per_device_batch() == run.spec.hyperparameters.per_device_batch()
    )
    read = model_shape(f"local:{tiny_base_model}")
    assert read is not None
    with db.session() as session:
        (entry,) = session.query(BaseModelEntry).all()
        assert entry.shape == {
            "architecture": asdict(read.architecture),
            "parameters": asdict(read.parameters),
        }
        assert catalog_shape(entry) == read
