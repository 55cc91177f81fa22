"""The audit trail sends no signals."""
