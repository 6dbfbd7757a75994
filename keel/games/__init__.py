"""Equilibrium learning for imperfect-information games: the CFR family on a vectorised game tree,
exploitability, PSRO with exact best responses, and PettingZoo adapters for OpenSpiel games."""
