"""Receivers of the storefront app: connected when the app is ready."""
