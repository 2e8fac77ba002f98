"""Ingest: feeds (files or URLs) → sanitized, desk-assigned items, one FeedResult per feed
(``digest.ingest.collect``)."""
