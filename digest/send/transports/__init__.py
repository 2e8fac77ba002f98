"""Transports deliver batches of one variant to many recipients (outbox, smtp, sendgrid)."""
