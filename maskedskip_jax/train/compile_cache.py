"""JAX's persistent compilation cache: a restarted run, an evaluation or an export skips recompiling."""

import os

import jax


def enable(cache_dir: str) -> None:
  """Caches every compilation over a second in `cache_dir` ('' leaves the cache off)."""
  if cache_dir:
    jax.config.update("jax_compilation_cache_dir", os.path.expanduser(cache_dir))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
