"""Knowledge (issue #17, DESIGN §12): the agency's and each client's documents, extracted into
chunks by a Celery job and searched by every agent's core `search_knowledge` tool with citations.

A Django app of its own (label `knowledge`) inside `tuning`: documents are tier-2 (instance) and
tier-3 (client) objects, governed like the rest of tuning, with migrations of their own.
"""
