"""The generation core's request parsing and incremental detokenization (no model needed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from shared.serving.python_backend.genai_stream import (
    REPLACEMENT_CHARACTER,
    GenerationRequest,
    IncrementalDecoder,
    RequestError,
)


@pytest.mark.parametrize(
    "text",
    [
        "Calculate 15% of 500.\n\n1. Java\n2. Python",
        "naïve café, smörgåsbord, 東京タワー and 🙂🙃 at the end",
        "  leading spaces\tand tabs  ",
    ],
)
def test_pieces_join_to_the_full_decode_and_never_split_a_character(tiny_chat_llama: Path, text: str) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_chat_llama)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    # The tiny vocabulary has no merges for most non-ASCII bytes: characters span several tokens.
    decoder = IncrementalDecoder(tokenizer)
    pieces = [decoder.add(token) for token in ids]
    assert "".join(pieces) + decoder.flush() == tokenizer.decode(ids, skip_special_tokens=True) == text
    assert not any(REPLACEMENT_CHARACTER in piece for piece in pieces)
    if not text.isascii():
        assert "" in pieces and len(ids) > len(text.encode("utf-8")) / 2


def test_a_cut_character_comes_out_only_at_the_flush(tiny_chat_llama: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_chat_llama)
    ids = tokenizer("ok 🙂", add_special_tokens=False)["input_ids"]
    decoder = IncrementalDecoder(tokenizer)
    pieces = [decoder.add(token) for token in ids[:-1]]
    assert "".join(pieces) == "ok "
    assert decoder.flush() == tokenizer.decode(ids[:-1])[len("ok ") :]


def test_requests_get_defaults_and_limits() -> None:
    request = GenerationRequest.from_json(b'{"prompt": "Hi", "stop": "\\n"}', 64, 512)
    assert request.messages == (("user", "Hi"),)
    assert (request.max_new_tokens, request.sampling, request.stop) == (64, False, ("\n",))
    chat = GenerationRequest.from_json(
        {
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
            "temperature": 0.7,
            "seed": 3,
        },
        64,
        512,
    )
    assert chat.sampling and chat.seed == 3 and chat.messages[0] == ("system", "Be brief.")
    for payload, message in [
        ("not json", "not JSON"),
        ('{"prompt": "a", "messages": []}', "exactly one of"),
        ('{"prompt": "a", "max_new_tokens": 0}', "'max_new_tokens'"),
        ('{"prompt": "a", "top_p": 0}', "'top_p' must be above 0.0"),
        ('{"prompt": "a", "stop": ["", "x"]}', "'stop'"),
        ('{"prompt": "a", "beams": 4}', "unknown fields ['beams']"),
        ('{"messages": [{"role": "assistant", "content": "a"}]}', "must not be the assistant's"),
    ]:
        with pytest.raises(RequestError, match=re.escape(message)):
            GenerationRequest.from_json(payload, 64, 512)
