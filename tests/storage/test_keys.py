from __future__ import annotations

import pytest

from shared.storage.errors import InvalidKey
from shared.storage.keys import deletable_prefix, directory_prefix, validate_key, validate_prefix


@pytest.mark.parametrize(
    "key", ["a", "datasets/sha256/ab12", "checkpoints/job-1/checkpoint-10/model.safetensors", "ünï/côdé.txt"]
)
def test_valid_keys_pass_unchanged(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("", "non-empty"),
        ("/a", "start with '/'"),
        ("a/../b", "'..'"),
        ("a/./b", "'.'"),
        ("a//b", "empty segments"),
        ("a\\b", "backslashes"),
        ("a/", "end with '/'"),
        ("a\x00b", "control characters"),
        ("k" * 1025, "1024 bytes"),
    ],
)
def test_invalid_keys_say_why(key: str, reason: str) -> None:
    with pytest.raises(InvalidKey) as raised:
        validate_key(key)

    assert reason in raised.value.reason


def test_prefixes_may_be_empty_partial_or_end_with_a_slash() -> None:
    assert validate_prefix("") == ""
    assert validate_prefix("runs/a") == "runs/a"
    assert validate_prefix("runs/a/") == "runs/a/"
    with pytest.raises(InvalidKey):
        validate_prefix("runs//a")
    with pytest.raises(InvalidKey):
        validate_prefix("../runs")


def test_directory_prefixes() -> None:
    assert directory_prefix("") == ""
    assert directory_prefix("runs/a") == "runs/a/"
    assert directory_prefix("runs/a/") == "runs/a/"
    assert deletable_prefix("runs/a") == "runs/a/"
    with pytest.raises(InvalidKey, match="every object"):
        deletable_prefix("")
