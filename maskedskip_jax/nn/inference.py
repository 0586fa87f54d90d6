"""The network's eval-mode forward over numpy clips, in fixed-size batches: one compiled shape for any N."""

import jax
import numpy as np

from maskedskip_jax.errors import UserError


def reconstruct(
  model, variables, clips: np.ndarray, batch_size: int = 16, out: np.ndarray | None = None, name: str = "clips"
) -> np.ndarray:
  """Eval-mode float32 reconstructions of `clips` (N, T, H, W, C), written into `out` (N, H, W, C)."""
  n, _, h, w, c = clips.shape
  out = np.empty((n, h, w, c), np.float32) if out is None else out
  batch_size = max(1, min(batch_size, n))
  with jax.default_matmul_precision("highest"):  # float32 means float32: no TF32 on GPUs
    apply = jax.jit(lambda v, x: model.apply(v, x, train=False))
    for start in range(0, n, batch_size):
      x = np.asarray(clips[start : start + batch_size], np.float32)
      lo, hi = float(x.min()), float(x.max())
      if not 0.0 <= lo <= hi <= 1.0:  # also false for NaN
        raise UserError(f"{name}: values must lie in [0, 1]; clips {start}..{start + len(x) - 1} span [{lo:g}, {hi:g}]")
      k = len(x)
      if k < batch_size:  # pad the last batch: one compiled shape for the whole run
        x = np.concatenate([x, np.repeat(x[-1:], batch_size - k, axis=0)])
      out[start : start + k] = np.asarray(apply(variables, x))[:k]
  return out
