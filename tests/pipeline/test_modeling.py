"""What each training method leaves trainable, on a tiny random BERT (and a tiny GPT-2 as the odd one out)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import GPT2Config, GPT2Model, MPNetConfig, MPNetModel

from shared.jobs.spec import Hyperparameters, LoraConfig
from shared.pipeline.hardware import GpuRequiredError
from shared.pipeline.modeling import (
    UnsupportedModelError,
    count_parameters,
    load_classifier,
    load_tokenizer,
)
from tests.support.tiny_models import build_tiny_bert

LABELS = ["negative", "neutral", "positive"]


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Three layers so that freezing can leave some layers below the trained ones.
    return build_tiny_bert(tmp_path_factory.mktemp("bert"), ["good bad fine"], num_layers=3)


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("gpt2")
    config = GPT2Config(vocab_size=64, n_positions=32, n_embd=16, n_layer=2, n_head=2, pad_token_id=0)
    GPT2Model(config).save_pretrained(directory)
    return directory


def trainable_names(model: torch.nn.Module) -> set[str]:
    return {name for name, parameter in model.named_parameters() if parameter.requires_grad}


def test_full_method_trains_everything_and_names_its_labels(bert_dir: Path) -> None:
    model = load_classifier(bert_dir, LABELS, "full", Hyperparameters())

    assert model.config.id2label == {0: "negative", 1: "neutral", 2: "positive"}
    assert model.config.label2id == {"negative": 0, "neutral": 1, "positive": 2}
    trainable, total = count_parameters(model)
    assert trainable == total == sum(parameter.numel() for parameter in model.parameters())


def test_lora_adapts_query_key_value_and_trains_the_head(bert_dir: Path) -> None:
    model = load_classifier(bert_dir, LABELS, "lora", Hyperparameters())

    assert isinstance(model, PeftModel)
    names = trainable_names(model)
    adapted = {name.split(".lora_")[0].rsplit(".", 1)[-1] for name in names if ".lora_" in name}
    assert adapted == {"query", "key", "value"}
    assert any(name.startswith("base_model.model.classifier.") for name in names)
    assert not any("embeddings" in name or "intermediate" in name for name in names)
    trainable, total = count_parameters(model)
    assert 0 < trainable < total


def test_lora_uses_the_target_modules_the_spec_names(bert_dir: Path) -> None:
    hyperparameters = Hyperparameters(lora=LoraConfig(r=4, target_modules=["value"]))

    model = load_classifier(bert_dir, LABELS, "lora", hyperparameters)

    adapted = {
        name.split(".lora_")[0].rsplit(".", 1)[-1] for name in trainable_names(model) if ".lora_" in name
    }
    assert adapted == {"value"}
    assert model.peft_config["default"].r == 4


@pytest.fixture(scope="module")
def mpnet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An architecture Temper knows no LoRA targets for."""
    directory = tmp_path_factory.mktemp("mpnet")
    config = MPNetConfig(
        vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    MPNetModel(config).save_pretrained(directory)
    return directory


def test_lora_without_a_known_default_asks_for_target_modules(mpnet_dir: Path) -> None:
    with pytest.raises(UnsupportedModelError, match=r"model type 'mpnet'.*lora\.target_modules"):
        load_classifier(mpnet_dir, LABELS, "lora", Hyperparameters())


def test_lora_on_gpt2_adapts_its_fused_attention_and_mlp_projections(gpt2_dir: Path) -> None:
    model = load_classifier(gpt2_dir, LABELS, "lora", Hyperparameters())
    adapted = {name.split(".lora_")[0].split(".")[-1] for name in trainable_names(model) if ".lora_" in name}
    assert adapted == {"c_attn", "c_proj", "c_fc"}


def test_freeze_leaves_only_head_pooler_and_top_layers_trainable(bert_dir: Path) -> None:
    model = load_classifier(bert_dir, LABELS, "freeze", Hyperparameters(freeze_top_layers=2))

    names = trainable_names(model)
    assert names == {
        name
        for name, _ in model.named_parameters()
        if name.startswith(("classifier.", "bert.pooler.", "bert.encoder.layer.1.", "bert.encoder.layer.2."))
    }
    trainable, total = count_parameters(model)
    assert trainable == sum(
        parameter.numel() for name, parameter in model.named_parameters() if name in names
    )
    assert trainable < total


def test_freeze_refuses_more_top_layers_than_the_model_has(bert_dir: Path) -> None:
    with pytest.raises(UnsupportedModelError, match="only 3 encoder layers"):
        load_classifier(bert_dir, LABELS, "freeze", Hyperparameters(freeze_top_layers=4))


def test_freeze_refuses_a_model_that_is_not_a_bert_like_encoder(gpt2_dir: Path) -> None:
    with pytest.raises(UnsupportedModelError, match="BERT-like encoder"):
        load_classifier(gpt2_dir, LABELS, "freeze", Hyperparameters())


def test_qlora_on_a_cpu_worker_names_the_missing_gpu(bert_dir: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this worker has a GPU")
    with pytest.raises(GpuRequiredError, match=r"^qlora needs a CUDA GPU; this worker has none$"):
        load_classifier(bert_dir, LABELS, "qlora", Hyperparameters())


def test_unknown_method_is_refused(bert_dir: Path) -> None:
    with pytest.raises(ValueError, match="unknown training method 'prompt'"):
        load_classifier(bert_dir, LABELS, "prompt", Hyperparameters())


def test_tokenizer_loads_from_the_base_model_directory(bert_dir: Path) -> None:
    tokenizer = load_tokenizer(bert_dir)
    assert tokenizer("good fine")["input_ids"] == [
        tokenizer.cls_token_id,
        *tokenizer.convert_tokens_to_ids(["good", "fine"]),
        tokenizer.sep_token_id,
    ]
