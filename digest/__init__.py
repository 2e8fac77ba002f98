"""digest: a newsroom's daily newsletter digest builder and mailer."""

__version__ = "0.1.0"
