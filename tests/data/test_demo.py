from __future__ import annotations

import json
from collections import Counter

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from shared.data.demo import DEMO_TEST_PATH, DEMO_TRAIN_PATH
from shared.data.demo.generate import CLASS_WEIGHTS, generate_tickets
from shared.data.report import dataset_overlap, normalize_text
from shared.data.validation import validate_classification
from shared.jobs.spec import ColumnMapping


def _rows(path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_demo_files_validate_with_five_classes() -> None:
    train = validate_classification(DEMO_TRAIN_PATH, "jsonl", ColumnMapping())
    test = validate_classification(DEMO_TEST_PATH, "jsonl", ColumnMapping())

    assert train.ok and test.ok
    assert train.labels == test.labels == sorted(CLASS_WEIGHTS)
    assert 300 <= train.row_count <= 420
    assert 100 <= test.row_count <= 140
    # Balanced-ish: no class is more than three times another.
    assert train.report["labels"]["imbalance_ratio"] < 3


def test_no_test_ticket_repeats_a_train_ticket() -> None:
    train, test = _rows(DEMO_TRAIN_PATH), _rows(DEMO_TEST_PATH)

    assert dataset_overlap([r["text"] for r in train], [r["text"] for r in test])["rows"] == 0
    normalized_train = {normalize_text(r["text"]) for r in train}
    assert not [r for r in test if normalize_text(r["text"]) in normalized_train]


def test_committed_files_are_what_the_generator_writes() -> None:
    train, test = generate_tickets()

    assert _rows(DEMO_TRAIN_PATH) == train
    assert _rows(DEMO_TEST_PATH) == test


def test_demo_is_learnable_but_not_trivial() -> None:
    train, test = _rows(DEMO_TRAIN_PATH), _rows(DEMO_TEST_PATH)
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    classifier = LogisticRegression(max_iter=2000, C=10.0)
    classifier.fit(vectorizer.fit_transform([r["text"] for r in train]), [r["label"] for r in train])

    predictions = classifier.predict(vectorizer.transform([r["text"] for r in test]))
    accuracy = sum(p == r["label"] for p, r in zip(predictions, test, strict=True)) / len(test)
    majority = Counter(r["label"] for r in test).most_common(1)[0][1] / len(test)

    assert accuracy > majority + 0.4
    assert accuracy < 1.0
