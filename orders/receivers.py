"""Receivers of the orders app: connected when the app is ready."""
