"""What a benchmark figure was measured under, and how a step is timed.

A speed figure means little without the machine, the load on it and the JAX settings in force,
so every script puts these into its JSON. JAX is imported only inside the functions that need
it, so that the input-pipeline benchmark, which has no JAX of its own, can name its CPU too.
"""

import os
import platform
import resource
import time

import numpy as np


def cpu_name() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
  except OSError:
    names = []
  return names[0] if names else platform.processor() or platform.machine()


def cores() -> int:
  """Cores this process may run on (what XLA's CPU thread pool is sized to)."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:
    return os.cpu_count() or 1


def environment() -> dict:
  import jax  # pylint: disable=g-import-not-at-top

  dev = jax.devices()[0]
  return {
    "backend": jax.default_backend(),
    "device_kind": dev.device_kind,
    "device_count": jax.device_count(),
    "cpu": cpu_name(),
    "cores": cores(),
    "jax_version": jax.__version__,
    "python": platform.python_version(),
    "xla_flags": os.environ.get("XLA_FLAGS", ""),
  }


def load_average() -> list[float]:
  return [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else []


def peak_memory() -> dict:
  """Peak device bytes where the runtime reports them (GPU/TPU), else the process's max RSS."""
  import jax  # pylint: disable=g-import-not-at-top

  stats = None
  try:
    stats = jax.devices()[0].memory_stats()
  except Exception:  # pylint: disable=broad-except
    pass  # CPU clients may not implement it
  if stats and "peak_bytes_in_use" in stats:
    return {"peak_device_bytes": int(stats["peak_bytes_in_use"])}
  # ru_maxrss is KiB on Linux.
  return {"peak_rss_bytes": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024}


def median_ms(run, steps: int) -> tuple[float, list[float], float]:
  """(median wall ms, all wall ms, median process CPU ms) of `steps` calls of `run` (which must block).

  CPU time summed over all threads barely moves when neighbours load the machine,
  while wall time does; on an idle box wall ~ CPU / cores for well-parallelised work.
  """
  times, cpu = [], []
  for _ in range(steps):
    begin, begin_cpu = time.perf_counter(), time.process_time()
    run()
    times.append((time.perf_counter() - begin) * 1e3)
    cpu.append((time.process_time() - begin_cpu) * 1e3)
  return float(np.median(times)), times, float(np.median(cpu))


def configure_jax(compilation_cache: str = "") -> None:
  import jax  # pylint: disable=g-import-not-at-top

  # Partitionable threefry makes XLA:CPU spend seconds of LLVM time per random init
  # array (~70 s to compile a tiny model's init on 2 cores); the init's random stream
  # is irrelevant to speed, and the timed step only splits one key.
  jax.config.update("jax_threefry_partitionable", False)
  if compilation_cache:
    jax.config.update("jax_compilation_cache_dir", os.path.expanduser(compilation_cache))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
