"""Eval sets of agent types and eval runs against one configuration (DESIGN §16, issue 22)."""
