"""The compute-dtype rule: one place decides what 'auto' means for training, evaluation and prediction."""

import jax
import jax.numpy as jnp

COMPUTE_DTYPES = ("auto", "float32", "bfloat16")


def compute_dtype(name: str, backend: str | None = None):
  """'auto' is bfloat16 on GPU/TPU but float32 on CPU, where XLA's bf16 convs crawl."""
  if name == "auto":
    name = "float32" if (backend or jax.default_backend()) == "cpu" else "bfloat16"
  return {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[name]
