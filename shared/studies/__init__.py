"""Ablation studies: a base job spec and variants of it, each run as a job, ranked by one metric."""
