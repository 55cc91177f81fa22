"""Receivers of the inventory app: connected when the app is ready."""
