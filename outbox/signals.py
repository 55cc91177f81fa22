"""The outbox sends no signals."""
