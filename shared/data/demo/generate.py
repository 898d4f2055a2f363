"""Generate the demo dataset: customer-support tickets in five classes.

Tickets are assembled from hand-written phrase pieces (a greeting, the issue, a detail, a sign-off)
with a seeded RNG, so the files are reproducible: `python -m shared.data.demo.generate` rewrites
them identically. Some pieces deliberately borrow another class's words (a crash on the payment
page is a bug, not billing) and some tickets carry typos or lose their punctuation, so that a
model has something to learn beyond keywords and does not reach 100%.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from shared.data.report import normalize_text

SEED = 20261122
TRAIN_SIZE = 360
TEST_SIZE = 120
HOLD_OUT_EVERY = 4
# Not perfectly balanced, as real queues are not.
CLASS_WEIGHTS: dict[str, float] = {
    "billing": 0.24,
    "shipping": 0.22,
    "account_access": 0.20,
    "bug_report": 0.19,
    "feature_request": 0.15,
}

GREETINGS = [
    "",
    "",
    "",
    "Hi,",
    "Hello,",
    "Hey there,",
    "Hi team,",
    "Good morning,",
    "Hello support,",
    "To whom it may concern,",
    "hi",
]
SIGN_OFFS = [
    "",
    "",
    "",
    "Thanks.",
    "Thank you!",
    "Thanks in advance.",
    "Please help.",
    "Cheers, Dana",
    "Regards, Tomás",
    "Appreciate it.",
    "asap please!!",
    "- Priya",
]
# Sentences any ticket may carry; they add words shared by every class.
ASIDES = [
    "I've been a customer for three years.",
    "This is the second time I'm writing about this.",
    "I tried the app and the website.",
    "My colleague has the same problem.",
    "Not very happy right now.",
    "I love the product otherwise.",
    "Could someone get back to me today?",
]

ISSUES: dict[str, list[str]] = {
    "billing": [
        "I was charged twice for my {plan} subscription this month.",
        "Why is there a charge of {amount} on my card? I never upgraded.",
        "I cancelled last week but I still got billed {amount}.",
        "Can I get a refund for the order I returned?",
        "My invoice shows the wrong company name and VAT number.",
        "The discount code didn't apply and I paid full price.",
        "Please switch me from monthly to yearly billing.",
        "I need a copy of the receipt for my {plan} plan for my expenses.",
        "My payment failed but the money left my bank account.",
        "How do I update the credit card on file?",
        "You charged me {amount} after the free trial, I thought it was free.",
        "The price went up without any notice.",
        "Refund still hasn't arrived, it's been {days} days.",
        "Do you offer a student discount on the {plan} plan?",
        "there is a mystery fee on my statement",
        "I was billed for 5 seats but we only use 3.",
    ],
    "shipping": [
        "My package {order} still hasn't arrived.",
        "The tracking number doesn't work for order {order}.",
        "Order {order} says delivered but nothing is at my door.",
        "The box arrived damaged and the item is broken.",
        "Can I change the delivery address for order {order}?",
        "It's been {days} days and my parcel is stuck in customs.",
        "I received the wrong item in my order.",
        "Do you ship to Canada and how long does it take?",
        "The courier left my parcel with a neighbour I don't know.",
        "Half of my order is missing, only one box came.",
        "When will order {order} be dispatched?",
        "Can I pick up the order at a store instead of delivery?",
        "the delivery guy never showed up",
        "Express shipping took {days} days, that's not express.",
        "I'd like to return the item, how do I get a shipping label?",
    ],
    "account_access": [
        "I can't log in to my account.",
        "The password reset email never arrives.",
        "My account got locked after too many attempts.",
        "I lost my phone and can't get the two-factor code.",
        "Someone changed my email address, I think I was hacked.",
        "It says my username doesn't exist but I've had it for years.",
        "How do I change the email I sign in with?",
        "The verification code is always expired when I enter it.",
        "I get 'invalid credentials' even with the right password.",
        "Please delete my account and all my data.",
        "I can't sign in with Google anymore on {device}.",
        "My session logs out every few minutes.",
        "i forgot my password and the reset link is broken",
        "I need to transfer the account to my colleague, she's the admin now.",
        "It keeps asking me to verify my identity over and over.",
    ],
    "bug_report": [
        "The app crashes every time I open settings on {device}.",
        "Clicking Save does nothing, my changes are lost.",
        "The payment page crashes right before I can pay.",
        "The dashboard shows a blank white screen on {device}.",
        "Search returns no results even for items I can see.",
        "Since the last update, notifications arrive twice.",
        "The export button gives an error 500.",
        "Dark mode makes the text invisible in the order history.",
        "The app freezes when I upload a photo on {device}.",
        "Dates in the calendar are shifted by one day.",
        "The login page spins forever after the update, even on wifi.",
        "Totals on the invoice page don't add up, looks like a rounding bug.",
        "the app just closes itself on {device}",
        "Pressing back takes me to the wrong screen.",
        "Emojis in my messages show up as question marks.",
        "The progress bar is stuck at 99% every time.",
    ],
    "feature_request": [
        "It would be great to export invoices as PDF.",
        "Please add a dark mode.",
        "Could you add an option to schedule deliveries for the weekend?",
        "I'd love to be able to share my list with family.",
        "Any plans for an Apple Watch app?",
        "Please let us sign in with a security key.",
        "Can you add keyboard shortcuts to the editor?",
        "A bulk edit option would save me hours.",
        "It would be nice if the app supported Portuguese.",
        "Suggestion: let admins set spending limits per team.",
        "Would you consider an offline mode for {device}?",
        "please add a way to undo deletes",
        "We need an API to pull our order data.",
        "I wish I could pick a custom color for each project.",
        "Could the weekly report be emailed automatically?",
    ],
}
# Details that make a ticket longer and more specific; kept per class.
DETAILS: dict[str, list[str]] = {
    "billing": [
        "The charge is from {date}.",
        "My account is on the {plan} plan.",
        "I have the bank statement if you need it.",
        "The amount was {amount}.",
    ],
    "shipping": [
        "I ordered it on {date}.",
        "The tracking page hasn't updated since {date}.",
        "I need it for a birthday this weekend.",
        "The order number is {order}.",
    ],
    "account_access": [
        "I tried three different browsers.",
        "I'm on {device}.",
        "I checked the spam folder too.",
        "It worked fine until {date}.",
    ],
    "bug_report": [
        "Steps: open the app, go to the page, tap the button.",
        "I'm on {device} with the latest version.",
        "Reinstalling didn't help.",
        "It started on {date}.",
    ],
    "feature_request": [
        "Our whole team would use it.",
        "Competitors already have this.",
        "Happy to test a beta.",
        "It's the one thing missing for us.",
    ],
}
PLANS = ["Pro", "Team", "Basic", "Premium", "Family"]
DEVICES = ["iPhone 13", "Android", "my Pixel", "Windows 11", "a Mac", "Chrome", "Firefox", "iPad"]
DATES = ["Monday", "March 3", "last Friday", "the 14th", "yesterday", "two weeks ago"]


def generate_tickets(seed: int = SEED) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Return (train, test) rows; texts are unique after normalization, so the splits never overlap.

    Every fourth issue of each class is held out of the training rows: part of the test set
    describes problems in words the model has not seen for that problem, as real tickets do.
    """
    rng = random.Random(seed)
    seen: set[str] = set()
    train = _draw(rng, TRAIN_SIZE, seen, held_out=True)
    test = _draw(rng, TEST_SIZE, seen, held_out=False)
    return train, test


def _draw(rng: random.Random, count: int, seen: set[str], held_out: bool) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for label in _label_sequence(rng, count):
        rows.append(_unique_ticket(rng, label, seen, held_out))
    return rows


def _label_sequence(rng: random.Random, count: int) -> list[str]:
    """Exactly the class shares of CLASS_WEIGHTS (rounded), in a shuffled order."""
    counts = {label: round(weight * count) for label, weight in CLASS_WEIGHTS.items()}
    first = next(iter(counts))
    counts[first] += count - sum(counts.values())
    sequence = [label for label, n in counts.items() for _ in range(n)]
    rng.shuffle(sequence)
    return sequence


def _unique_ticket(rng: random.Random, label: str, seen: set[str], held_out: bool) -> dict[str, str]:
    while True:
        issues = ISSUES[label]
        if held_out:
            issues = [issue for i, issue in enumerate(issues) if i % HOLD_OUT_EVERY != HOLD_OUT_EVERY - 1]
        text = _ticket(rng, label, issues)
        key = normalize_text(text)
        if key not in seen:
            seen.add(key)
            return {"text": text, "label": label}


def _ticket(rng: random.Random, label: str, issues: list[str]) -> str:
    parts = [rng.choice(GREETINGS), _fill(rng, rng.choice(issues))]
    if rng.random() < 0.5:
        parts.append(_fill(rng, rng.choice(DETAILS[label])))
    if rng.random() < 0.2:
        parts.append(rng.choice(ASIDES))
    parts.append(rng.choice(SIGN_OFFS))
    text = " ".join(part for part in parts if part)
    style = rng.random()
    if style < 0.15:
        text = _typo(rng, text)
    elif style < 0.25:
        # Typed in a hurry: lower case, no final punctuation.
        text = text.lower().rstrip(".!")
    return text


def _fill(rng: random.Random, template: str) -> str:
    return template.format(
        plan=rng.choice(PLANS),
        amount=f"${rng.randint(5, 199)}.{rng.choice(['00', '99', '49'])}",
        order=f"#{rng.randint(10000, 99999)}",
        days=rng.randint(3, 21),
        device=rng.choice(DEVICES),
        date=rng.choice(DATES),
    )


def _typo(rng: random.Random, text: str) -> str:
    """Swap two letters or drop one in a random longer word."""
    words = text.split(" ")
    candidates = [i for i, word in enumerate(words) if len(word) > 4 and word.isalpha()]
    if not candidates:
        return text
    index = rng.choice(candidates)
    word = words[index]
    position = rng.randrange(1, len(word) - 2)
    if rng.random() < 0.5:
        word = word[:position] + word[position + 1] + word[position] + word[position + 2 :]
    else:
        word = word[:position] + word[position + 1 :]
    words[index] = word
    return " ".join(words)


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8") as file:
        for row in rows:
            file.write(json.dumps(row, ensure_ascii=False) + "\n")


def main() -> None:
    from shared.data.demo import DEMO_TEST_PATH, DEMO_TRAIN_PATH

    train, test = generate_tickets()
    write_jsonl(DEMO_TRAIN_PATH, train)
    write_jsonl(DEMO_TEST_PATH, test)
    print(f"wrote {len(train)} rows to {DEMO_TRAIN_PATH} and {len(test)} rows to {DEMO_TEST_PATH}")


if __name__ == "__main__":
    main()
