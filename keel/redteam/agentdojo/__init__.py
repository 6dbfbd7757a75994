"""Keel's guard on AgentDojo (Debenedetti et al., NeurIPS 2024 Datasets & Benchmarks): a pipeline element
that checks every tool call before AgentDojo's tool executor, scripted and model agents, and a resumable
campaign whose utility and security are decided by AgentDojo's own judges.

    keel redteam agentdojo --suite banking --attack important_instructions --agent obedient --json
"""
