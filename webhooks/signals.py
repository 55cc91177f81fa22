"""Webhooks is the layer just below the top apps, and nothing it does is an event for them: it
sends no signals."""
