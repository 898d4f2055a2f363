"""The demo datasets shipped with Temper.

Customer-support tickets in five classes (`temper demo`), written by `generate.py`; a support desk's
answers in its house style (`temper demo --instruct`), written by `instructions.py`.
"""

from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent
DEMO_TRAIN_PATH = DEMO_DIR / "support_tickets_train.jsonl"
DEMO_TEST_PATH = DEMO_DIR / "support_tickets_test.jsonl"
INSTRUCT_TRAIN_PATH = DEMO_DIR / "support_desk_train.jsonl"
INSTRUCT_TEST_PATH = DEMO_DIR / "support_desk_test.jsonl"
