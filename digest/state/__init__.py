"""State that survives runs: feed cache, editions, seen stories, ledger, suppressions, runs.

Imports records and types only (digest.model, digest.errors), never the stages above it:
opening the store a config names is digest.statefile's job.
"""

from digest.state.store import Store

__all__ = ["Store"]
