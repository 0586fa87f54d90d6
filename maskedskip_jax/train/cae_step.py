"""Seed 003's CAE train step (Almurumudhe & Hornyak 2025, Sec. 3.1-3.2): a pure function of (state, batch).

  S = alpha * L_rec + beta * L_motion

L_rec is the mean squared error of the centre frame's reconstruction (Sec. 3.2's MSE). The paper names L_motion
("reflects motion-based scoring") and a "spatial weighting layer ... applied to the loss function, prioritizing
reconstruction errors in foreground areas" but gives no formula for it. Read here as that squared error weighted per
pixel by the frame's motion: `motion.motion_weights`, the mean absolute difference between the centre frame and
its neighbours in the clip (optionally median filtered first), normalised to average 1 over each frame. A static
frame's L_motion is then its L_rec, and moving pixels count for more. The weights are constants of the step (no
gradient flows into the input frames through them). The paper gives alpha and beta no values: 1 and 1 by default.

Clips of T = 1 have no neighbours: their weights are uniform and L_motion equals L_rec (validation refuses beta > 0
with T = 1). With pasted objects ('target' and 'anomaly_map' in the batch) the clean centre frame is the target and
the pasted pixels count as motion, as in the U-Net's motion-weighted step.
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax

from maskedskip_jax.nn import cae
from maskedskip_jax.nn import motion
from maskedskip_jax.train import augment as augment_lib
from maskedskip_jax.train import step as step_lib

VARIANT = cae.VARIANT
PARTS = ("reconstruction", "motion")  # the loss terms logged beside the total


@dataclasses.dataclass(frozen=True)
class HybridOptions:
  """alpha, beta: the weights of L_rec and L_motion; motion_median, motion_uniform_mix: as `motion.motion_weights`."""

  alpha: float = 1.0
  beta: float = 1.0
  motion_median: int = 0
  motion_uniform_mix: float = 0.0

  @classmethod
  def from_config(cls, config) -> "HybridOptions":
    t = config.train
    return cls(t.hybrid_alpha, t.hybrid_beta, t.motion_median, t.motion_uniform_mix)


def clip_losses(
  target: jax.Array, recon: jax.Array, clips: jax.Array, options: HybridOptions, anomaly_map: jax.Array | None = None
) -> dict[str, jax.Array]:
  """{'loss', 'reconstruction', 'motion'}, each (B,): S, L_rec and L_motion of each clip's centre frame.

  target, recon: (B, H, W, C); clips: (B, T, H, W, C), whose frames give the motion weights.
  """
  sq = jnp.square(target.astype(jnp.float32) - recon.astype(jnp.float32))
  rec = jnp.mean(sq, axis=(1, 2, 3))
  if options.beta == 0:
    mot = jnp.zeros_like(rec)
  else:
    weights = motion.motion_weights(
      clips, median=options.motion_median, anomaly_maps=anomaly_map, uniform_mix=options.motion_uniform_mix
    )
    mot = jnp.mean(jax.lax.stop_gradient(weights)[..., None] * sq, axis=(1, 2, 3))
  return {"loss": options.alpha * rec + options.beta * mot, "reconstruction": rec, "motion": mot}


def held_out_losses(variables, clips: jax.Array, *, model: cae.Cae, loss: HybridOptions) -> jax.Array:
  """(B,) S of each clip in eval mode (no dropout): the loss early stopping watches on held-out videos."""
  recon = model.apply(variables, clips, train=False)
  return clip_losses(clips[:, (clips.shape[1] - 1) // 2], recon, clips, loss)["loss"]


def train_step(
  state: dict[str, Any],
  batch: dict[str, jax.Array],
  *,
  model: cae.Cae,
  tx,
  loss: HybridOptions = HybridOptions(),
  augment: augment_lib.Options | None = None,
) -> tuple[dict[str, Any], dict[str, jax.Array]]:
  """One optimiser step on S; returns (new state, metrics: loss, grad_norm and `PARTS`, batch means).

  `augment` transforms the batch first (`augment.augment_batch`), with a key drawn from the state's rng.
  """
  if augment is None:
    rng, dropout = jax.random.split(state["rng"])
  else:
    rng, dropout, key = jax.random.split(state["rng"], 3)
    batch = augment_lib.augment_batch(key, batch, augment)
  clips = batch["clips"]
  target = batch.get("target", clips[:, (clips.shape[1] - 1) // 2])

  def loss_fn(params):
    recon = model.apply({"params": params}, clips, train=True, rngs={"dropout": dropout})
    parts = {k: jnp.mean(v) for k, v in clip_losses(target, recon, clips, loss, batch.get("anomaly_map")).items()}
    return parts.pop("loss"), parts

  (total, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
  new_state = step_lib.apply_gradients(state, grads, tx=tx, batch_stats=state["batch_stats"], rng=rng)
  return new_state, {"loss": total, "grad_norm": optax.tree.norm(grads), **parts}
