"""Evolutionary discovery of multi-agent learning algorithms (arXiv 2602.16928): a population of
CFR-variant programs in SQLite, program-level and LLM mutators, and a sandbox for untrusted code."""
