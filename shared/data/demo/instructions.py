"""Generate the instruction-tuning demo set: a support desk's answers in its own house style.

Each row is a customer's question (Alpaca `instruction`) and the desk's answer (`output`): always
"Thanks for reaching out!", one concrete step for that kind of request with the customer's details
filled in, and the desk's sign-off. A general chat model answers these questions sensibly but in its
own words; after a few minutes of LoRA it should answer in the desk's, which is what the demo's
perplexity and ROUGE-L against the base model show. Seeded: `python -m shared.data.demo.instructions`
rewrites the files identically.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SEED = 20261130
TRAIN_SIZE = 48
TEST_SIZE = 16
SIGN_OFF = "— The Temper support desk"
OPENING = "Thanks for reaching out!"

PRODUCTS = ["Aurora lamp", "Breeze fan", "Cobalt kettle", "Delta speaker", "Ember heater"]
CITIES = ["Lyon", "Porto", "Ghent", "Bergen", "Turin", "Leeds", "Graz", "Malmo"]

# (question templates, answer template) per intent; {order} and {product}/{city} are filled in.
INTENTS: dict[str, tuple[list[str], str]] = {
    "track": (
        [
            "Where is my order {order}?",
            "Order {order} has not arrived yet, can you check?",
            "Can you tell me when order {order} will be delivered?",
        ],
        "Your order {order} is on its way: follow it at temper.example/track/{order}.",
    ),
    "return": (
        [
            "I want to return the {product} from order {order}.",
            "How do I send back the {product}? It came with order {order}.",
            "The {product} from order {order} is not what I expected, can I return it?",
        ],
        "To return the {product}, print the label at temper.example/returns/{order} and drop the parcel at any post office.",
    ),
    "broken": (
        [
            "The {product} stopped working after a week.",
            "My {product} will not turn on anymore.",
            "The {product} arrived broken, what now?",
        ],
        "We are sorry the {product} failed: reply with a photo of the serial number and we will ship a replacement.",
    ),
    "address": (
        [
            "Can I change the delivery address of order {order} to {city}?",
            "I moved to {city}, please update order {order}.",
            "Please ship order {order} to my new address in {city}.",
        ],
        "Done: order {order} will now be delivered to your new address in {city}.",
    ),
}


def _row(rng: random.Random) -> dict[str, str]:
    intent = rng.choice(sorted(INTENTS))
    questions, answer = INTENTS[intent]
    slots = {
        "order": f"{rng.randint(10000, 99999)}",
        "product": rng.choice(PRODUCTS),
        "city": rng.choice(CITIES),
    }
    question = rng.choice(questions).format(**slots)
    return {
        "instruction": question,
        "input": "",
        "output": f"{OPENING} {answer.format(**slots)} {SIGN_OFF}",
    }


def generate() -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Distinct questions: a test question is never one the model was trained on."""
    rng = random.Random(SEED)
    rows: dict[str, dict[str, str]] = {}
    while len(rows) < TRAIN_SIZE + TEST_SIZE:
        row = _row(rng)
        rows.setdefault(row["instruction"], row)
    ordered = list(rows.values())
    return ordered[:TRAIN_SIZE], ordered[TRAIN_SIZE:]


def main() -> None:
    directory = Path(__file__).parent
    train, test = generate()
    for name, rows in (("support_desk_train.jsonl", train), ("support_desk_test.jsonl", test)):
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        (directory / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
