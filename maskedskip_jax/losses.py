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
