"""SmolLM2-135M-Instruct, converted from its GGUF, exported and published, answering over Triton's
streaming protocol and through the embedded runner."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.client.triton import TemperClient
from shared.pipeline.export.genai import GenAIExportResult
from shared.serving.local_generation import LocalGenerationRunner
from shared.serving.repository_check import check_repository
from shared.serving.triton_control import TritonControl
from shared.serving.triton_repository import publish_causal_lm
from tests.support.llm_fixtures import shortest_alpaca_test_rows
from tests.support.tiny_llama import greedy_answer


@pytest.mark.slow
def test_smollm2_served_greedily_gives_pytorchs_text(
    smollm2_genai: GenAIExportResult, smollm2_plain: Path, triton_server, tmp_path: Path
) -> None:
    fp32, int4 = smollm2_genai.variants["fp32"].directory, smollm2_genai.variants["int4"].directory
    assert fp32 is not None and int4 is not None
    root = tmp_path / "repository"
    publish_causal_lm(root, "smol", 1, fp32, "fp32")
    publish_causal_lm(root, "smol_int4", 1, int4, "int4")
    assert check_repository(root, "smol") == [] and check_repository(root, "smol_int4") == []

    questions = [row["instruction"] for row in shortest_alpaca_test_rows(3)[1:]]
    server = triton_server(root)
    control = TritonControl(server.url)
    control.load_model("smol")
    with TemperClient(server.url, "smol") as client:
        for question in questions:
            served = client.generate(prompt=question, max_new_tokens=16)
            assert served.text == greedy_answer(smollm2_plain, question, max_new_tokens=16)
            assert served.finish_reason in ("eos", "length")
    control.close()

    int4_runner = LocalGenerationRunner(root, "smol_int4", 1, threads=2)
    answer = int4_runner.generate({"prompt": questions[0], "max_new_tokens": 16})
    assert answer.text.strip() and answer.finish_reason in ("eos", "length")
