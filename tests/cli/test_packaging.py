"""pyproject.toml declares what the package needs in a fresh environment without TensorFlow.

The GPU machine, Colab TPU runtimes and a plain `pip install maskedskip_jax` have no
TensorFlow, which otherwise brings in packages that other code quietly relies on.
"""

import ast
import importlib.metadata
import os
import re
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGES = ("maskedskip_jax", "data_pipeline")
# Distribution names of import names that differ, for when the distribution is not installed
# here (an optional extra); installed ones are looked up in the environment's metadata.
NOT_INSTALLED_NAMES = {
  "tensorflow": "tensorflow-cpu",
  "tensorflow_datasets": "tensorflow-datasets",
  "cv2": "opencv-python-headless",
  "sklearn": "scikit-learn",
}


def _names(requirements) -> set[str]:
  return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def _project():
  with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
    return tomllib.load(f)["project"]


def _top_level_imports(path: str) -> set[str]:
  with open(path) as f:
    tree = ast.parse(f.read(), filename=path)
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      found.update(alias.name.split(".")[0] for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      found.add(node.module.split(".")[0])
  return found


def test_every_third_party_import_is_a_declared_dependency():
  project = _project()
  declared = _names(project["dependencies"])
  for extra in project["optional-dependencies"].values():
    declared |= _names(extra)
  distributions = importlib.metadata.packages_distributions()
  undeclared = {}
  for package in PACKAGES:
    for folder, _, files in os.walk(os.path.join(ROOT, package)):
      for name in files:
        if not name.endswith(".py"):
          continue
        for module in _top_level_imports(os.path.join(folder, name)):
          if module in sys.stdlib_module_names or module in PACKAGES or module.startswith("_"):
            continue
          names = distributions.get(module, [NOT_INSTALLED_NAMES.get(module, module)])
          dists = {d.lower().replace("_", "-") for d in names}
          if not dists & declared:
            undeclared.setdefault(module, []).append(os.path.relpath(os.path.join(folder, name), ROOT))
  assert not undeclared, f"imported but not in pyproject.toml: {undeclared}"


def test_bundle_export_dependency_is_declared_without_tensorflow():
  # jax.export's serializer (the bundle's StableHLO file) imports flatbuffers, which jax
  # does not require; TensorFlow does, so only TF-free installs (GPU image, Colab TPU) broke.
  core = _names(_project()["dependencies"])
  assert "flatbuffers" in core
  jax_requires = _names(importlib.metadata.requires("jax") or [])
  assert "flatbuffers" not in jax_requires, "jax now requires flatbuffers itself: the explicit pin can go"
