"""A classifier's label names, as its saved config holds them."""

from __future__ import annotations

from typing import Any


def labels_from_config(config: Any) -> list[str]:
    """Label names in class-index order, from a transformers config's `id2label`.

    Configs read from JSON may key id2label by strings ("0"), freshly built ones by ints.
    """
    id2label = {int(index): str(label) for index, label in (config.id2label or {}).items()}
    return [id2label[index] for index in range(len(id2label))]
