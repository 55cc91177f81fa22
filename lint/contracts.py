"""A contract import-linter's own types cannot state: modules that import only what is listed.

Import-linter sees an external package only whole (`django`, never `django.db`), so "a
signals module imports nothing but `django.dispatch`" needs the modules' own import lines.
"""

import ast
import importlib.util

import grimp
from importlinter import Contract, ContractCheck, fields, output
from importlinter.domain import helpers


class ImportsOnlyContract(Contract):
    """Check that every module matching `modules` imports nothing but the `allowed` modules.

    Any import counts: inside a function, relative, or of a module of the same package.
    """

    modules = fields.ListField(subfield=fields.ModuleExpressionField())
    allowed = fields.ListField(subfield=fields.StringField())
    # Twisted (Daphne's server, loaded with the project's apps) declares interfaces on
    # subclasses of abc.ABC, which gives ABC a zope.interface `__provides__` that raises when
    # read through a subclass; import-linter reads every name of the class to find its fields.
    __provides__ = None

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        allowed = set(self.allowed)  # type: ignore[arg-type]
        checked = helpers.module_expressions_to_modules(
            graph,
            self.modules,  # type: ignore[arg-type]
            raise_if_unmatched=True,
        )
        breaches = [
            (module.name, imported, line)
            for module in sorted(checked, key=lambda module: module.name)
            for imported, line in _imports(module.name)
            if imported not in allowed
        ]
        return ContractCheck(kept=not breaches, metadata={"breaches": breaches})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for module, imported, line in check.metadata["breaches"]:
            output.print_error(f"{module} imports {imported} (line {line})", bold=False)
            output.new_line()


def _imports(module_name: str) -> list[tuple[str, int]]:
    """Every module `module_name` imports, absolute, with the line of the import."""
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.origin is None:
        raise ValueError(f"cannot find the source of {module_name}")
    with open(spec.origin, encoding="utf-8") as source:
        tree = ast.parse(source.read(), filename=spec.origin)
    package = module_name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.append((_absolute(node, package), node.lineno))
    return found


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    base = ".".join(parts[: len(parts) - node.level + 1])
    return f"{base}.{node.module}" if node.module else base
