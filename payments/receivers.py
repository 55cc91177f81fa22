"""Receivers of the payments app: connected when the app is ready."""
