"""Audit receivers are connected per registered model by audit.registry."""
