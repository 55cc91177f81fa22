"""Import-linter contract types of the project's own (pyproject's `contract_types`)."""
