"""The stages of a causal-LM (instruction-tuning) job: the same runner, run handle and results as
classification, with the conversation data, SFT, generation evaluation and LLM export of this family."""
