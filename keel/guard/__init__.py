"""Symbolic guardrails over tool calls: a YAML policy, checked before each call, with an audit log."""

from keel.guard.audit import AuditLog, read_audit
from keel.guard.guard import ALLOW, ASK, DENY, REWRITE, Decision, Guard, GuardContext
from keel.guard.policy import Policy, PolicyError, builtin_policy, load_policy, parse_policy

__all__ = ["ALLOW", "ASK", "AuditLog", "DENY", "Decision", "Guard", "GuardContext", "Policy", "PolicyError", "REWRITE",
           "builtin_policy", "load_policy", "parse_policy", "read_audit"]
