"""The train stage of a causal-LM job: supervised fine-tuning with progress, checkpoints and cancel
exactly as for classification (the same hooks), on the job's tokenized conversations."""

from __future__ import annotations

from shared.jobs.results import TrainResult
from shared.jobs.run import JobRun
from shared.jobs.stages.causal_lm.data import job_tokenizer, load_conversations, tokenized
from shared.jobs.stages.data import base_model_dir
from shared.jobs.stages.memory import fit_to_worker
from shared.jobs.stages.runner import StageOutcome
from shared.jobs.stages.train import JobTrainingHooks, finish_training, restore_newest_checkpoint
from shared.pipeline.sft import SFTRequest, train_causal_lm


def run_train(run: JobRun) -> StageOutcome:
    spec = run.spec
    model_dir = base_model_dir(run)
    hyperparameters, auto_batch = fit_to_worker(run, model_dir)
    conversations = load_conversations(run)
    tokenizer, template_source = job_tokenizer(run)
    work_dir = run.work_dir("train")
    resume_from = restore_newest_checkpoint(run, work_dir / "checkpoints")
    request = SFTRequest(
        base_model_path=model_dir,
        tokenizer=tokenizer,
        template_source=template_source,
        train_dataset=tokenized(run, "train", conversations.train, tokenizer),
        eval_dataset=tokenized(run, "validation", conversations.validation, tokenizer)
        if len(conversations.validation)
        else None,
        method=spec.method,
        hyperparameters=hyperparameters,
        output_dir=work_dir,
        resume_from_checkpoint=resume_from,
    )
    hooks = JobTrainingHooks(run)
    trained = train_causal_lm(request, hooks)
    result = TrainResult(
        status=trained.status,
        global_step=trained.global_step,
        metrics=trained.eval_metrics,
        train_runtime_s=trained.train_runtime_seconds,
        precision=trained.precision,
        train_samples_per_second=trained.train_samples_per_second,
        train_tokens_per_second=trained.train_tokens_per_second,
        device=trained.device,
        trainable_parameters=trained.trainable_parameters,
        total_parameters=trained.total_parameters,
        resumed_from=resume_from.name if resume_from else None,
        auto_batch=auto_batch,
        packing=trained.packing,
        chat_template=template_source,
    )
    return finish_training(run, hooks, result, trained.final_model_dir, trained.adapter_dir, work_dir)
