"""State that survives runs: feed cache, editions, seen stories (SQLite by default)."""

from digest.state.store import Store, open_reader, open_store

__all__ = ["Store", "open_reader", "open_store"]
