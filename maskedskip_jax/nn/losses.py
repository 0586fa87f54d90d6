"""Reconstruction losses."""

import jax
import jax.numpy as jnp


def norm_loss(target: jax.Array, recon: jax.Array) -> jax.Array:
  """The reference `NormLoss`: mean over batch and pixels of the L2 norm over channels.

  Computed in float32 whatever the compute dtype. The tiny epsilon keeps the
  gradient of the norm finite where a pixel is reconstructed exactly.
  """
  diff = target.astype(jnp.float32) - recon.astype(jnp.float32)
  return jnp.mean(jnp.sqrt(jnp.sum(diff * diff, axis=-1) + 1e-12))


# The head outputs probabilities, which saturate to exactly 0 or 1 in float32; clipping keeps the log finite.
_BCE_EPS = 1e-6


def mask_bce(anomaly_map: jax.Array, mask: jax.Array) -> jax.Array:
  """Mean binary cross-entropy of the predicted anomaly map `mask` (B, H, W) in [0, 1] against the 0/1 map."""
  p = jnp.clip(mask.astype(jnp.float32), _BCE_EPS, 1.0 - _BCE_EPS)
  t = anomaly_map.astype(jnp.float32)
  return -jnp.mean(t * jnp.log(p) + (1.0 - t) * jnp.log1p(-p))
