"""The package's layout rules, checked on the source: imports run one way, nobody uses another module's private
names, every module holds one concept in under 300 lines, and every console script resolves."""

import ast
import importlib
import os
import tomllib

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGES = ("maskedskip_jax", "data_pipeline")
MAX_LINES = 300


def _modules() -> dict[str, str]:
  """Dotted module name -> file path, for every module of both packages."""
  found = {}
  for package in PACKAGES:
    for folder, _, files in os.walk(os.path.join(ROOT, package)):
      for name in files:
        if name.endswith(".py"):
          rel = os.path.relpath(os.path.join(folder, name), ROOT)[:-3].replace(os.sep, ".")
          found[rel.removesuffix(".__init__")] = os.path.join(folder, name)
  return found


MODULES = _modules()


def _imports(path: str) -> list[tuple[str, str | None]]:
  """(module, imported name or None) for every absolute import of the packages in `path`, lazy ones included."""
  with open(path) as f:
    tree = ast.parse(f.read(), filename=path)
  out = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      out += [(a.name, None) for a in node.names if a.name.split(".")[0] in PACKAGES]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] in PACKAGES:
      for a in node.names:
        child = f"{node.module}.{a.name}"
        out.append((child, None) if child in MODULES else (node.module, a.name))
  return out


def _graph() -> dict[str, set[str]]:
  graph = {}
  for name, path in MODULES.items():
    # Importing a package's submodule runs the package's __init__ too, but ours import nothing.
    graph[name] = {m for m, _ in _imports(path) if m in MODULES and m != name}
  return graph


def test_no_import_cycles():
  graph, state, cycles = _graph(), {}, []

  def visit(node, stack):
    state[node] = "open"
    for nxt in sorted(graph[node]):
      if state.get(nxt) == "open":
        cycles.append(stack[stack.index(nxt) :] + [nxt])
      elif nxt not in state:
        visit(nxt, stack + [nxt])
    state[node] = "done"

  for node in sorted(graph):
    if node not in state:
      visit(node, [node])
  assert not cycles, cycles


def test_data_pipeline_never_imports_maskedskip_jax():
  offenders = {
    name: sorted(m for m in deps if m.startswith("maskedskip_jax"))
    for name, deps in _graph().items()
    if name.startswith("data_pipeline")
  }
  assert not {k: v for k, v in offenders.items() if v}


def _private_uses(path: str) -> list[str]:
  """`from pkg.mod import _x` and `mod._x` for modules of the packages, as used in the file at `path`."""
  offenders = [f"from {m} import {n}" for m, n in _imports(path) if n is not None and n.startswith("_")]
  with open(path) as f:
    tree = ast.parse(f.read(), filename=path)
  aliases = {}
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
      for a in node.names:
        if f"{node.module}.{a.name}" in MODULES:
          aliases[a.asname or a.name] = f"{node.module}.{a.name}"
  for node in ast.walk(tree):
    if (
      isinstance(node, ast.Attribute)
      and isinstance(node.value, ast.Name)
      and node.value.id in aliases
      and node.attr.startswith("_")
      and not node.attr.startswith("__")
    ):
      offenders.append(f"{aliases[node.value.id]}.{node.attr}")
  return offenders


def test_no_module_uses_another_modules_private_names():
  offenders = {name: _private_uses(path) for name, path in MODULES.items()}
  assert not {k: v for k, v in offenders.items() if v}


def test_tests_use_only_public_names():
  tests_dir = os.path.join(ROOT, "tests")
  offenders = {}
  for folder, _, files in os.walk(tests_dir):
    for name in files:
      if name.endswith(".py"):
        found = _private_uses(os.path.join(folder, name))
        if found:
          offenders[os.path.relpath(os.path.join(folder, name), ROOT)] = found
  assert not offenders


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_is_under_the_line_limit(name):
  with open(MODULES[name]) as f:
    assert len(f.read().splitlines()) < MAX_LINES


def test_console_scripts_resolve_and_each_has_its_python_m_form():
  with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
    scripts = tomllib.load(f)["project"]["scripts"]
  assert {"maskedskip-jax", "maskedskip-ablate", "maskedskip-predict"} <= set(scripts)
  for target in scripts.values():
    module, func = target.split(":")
    assert module in MODULES and os.path.basename(MODULES[module]) != "__init__.py"
    assert callable(getattr(importlib.import_module(module), func))
    with open(MODULES[module]) as f:
      assert 'if __name__ == "__main__":' in f.read()  # `python -m <module>` is the same command
