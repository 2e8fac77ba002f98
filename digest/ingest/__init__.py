"""Ingest: feeds (files or URLs) → sanitized, desk-assigned items, one FeedResult per feed."""

from digest.ingest.collect import collect

__all__ = ["collect"]
