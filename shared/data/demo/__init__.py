"""The demo dataset shipped with Temper: customer-support tickets in five classes.

The files are written by `shared/data/demo/generate.py`; see its docstring for how.
"""

from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent
DEMO_TRAIN_PATH = DEMO_DIR / "support_tickets_train.jsonl"
DEMO_TEST_PATH = DEMO_DIR / "support_tickets_test.jsonl"
