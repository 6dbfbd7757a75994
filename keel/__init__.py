"""Keel: train agents' policies and memory with RL under formal specifications, then red-team them."""

__version__ = "0.1.0"
