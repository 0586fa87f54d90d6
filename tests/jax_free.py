"""Python source for a process that cannot import JAX, nor anything else the onnxruntime and live paths must not need.

`BLOCKER` makes every import of a `BLOCKED` package fail with "<name> cannot be imported in this test";
`PREDICT` then runs `python -m maskedskip_jax.predict` with the process's arguments.
"""

BLOCKED = (
  "jax",
  "jaxlib",
  "flax",
  "optax",
  "orbax",
  "chex",
  "jax2onnx",
  "tensorflow",
  "ml_collections",
  "torch",
  "absl",
  "tqdm",
)
BLOCKER = f"""
import importlib.abc, sys

class Blocked(importlib.abc.MetaPathFinder):
  def find_spec(self, name, path=None, target=None):
    if name.split(".")[0] in {BLOCKED!r}:
      raise ImportError(f"{{name}} cannot be imported in this test")

sys.meta_path.insert(0, Blocked())
"""
PREDICT = (
  BLOCKER
  + """
import runpy
sys.argv[0] = "maskedskip_jax.predict"
runpy.run_module("maskedskip_jax.predict", run_name="__main__", alter_sys=True)
"""
)
