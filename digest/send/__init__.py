"""Send: subscribers, the per-recipient ledger, transports, and unsubscribe links."""
