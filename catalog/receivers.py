"""Receivers of the catalog app: connected when the app is ready."""
