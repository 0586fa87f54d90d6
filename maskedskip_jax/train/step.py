"""One training step: a pure function of (state, batch), with every option passed in explicitly.

The loss is the reference's norm loss on the centre frame's reconstruction, optionally weighted by motion
(AED-MAE Eq. 1-2), plus the SSMCTB blocks' self-supervised losses and the mask head's BCE when present.
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax

from maskedskip_jax.nn import losses
from maskedskip_jax.nn import motion
from maskedskip_jax.nn import ssmctb
from maskedskip_jax.train import augment as augment_lib

MOTION_WEIGHTINGS = ("none", "pixel", "patch")


@dataclasses.dataclass(frozen=True)
class LossOptions:
  """How the step weighs its loss terms.

  motion_*: the loss weighting of motion.motion_weights ('none', 'pixel' or 'patch'), its median filter size,
  patch size and uniform mix. mask_loss_weight: the mask head's BCE weight (ignored without a mask head).
  """

  motion_weighting: str = "none"
  motion_median: int = 0
  motion_patch: int = 16
  motion_uniform_mix: float = 0.0
  mask_loss_weight: float = 1.0

  @classmethod
  def from_config(cls, config) -> "LossOptions":
    t = config.train
    return cls(
      motion_weighting=t.motion_weighting,
      motion_median=t.motion_median,
      motion_patch=t.motion_patch,
      motion_uniform_mix=t.motion_uniform_mix,
      mask_loss_weight=t.mask_loss_weight,
    )


def apply_gradients(state: dict[str, Any], grads, *, tx, batch_stats, rng) -> dict[str, Any]:
  """The state after one optimiser update with `grads`, the new BatchNorm statistics and the next step rng."""
  updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
  return dict(
    params=optax.apply_updates(state["params"], updates),
    batch_stats=batch_stats,
    opt_state=opt_state,
    step=state["step"] + 1,
    rng=rng,
  )


def _motion_weights(clips, loss: LossOptions, anomaly_maps=None):
  """The loss weights of `loss.motion_weighting` for the clips' centre frames, or None."""
  if loss.motion_weighting == "none":
    return None
  return motion.motion_weights(
    clips,
    median=loss.motion_median,
    anomaly_maps=anomaly_maps,
    patch=loss.motion_patch if loss.motion_weighting == "patch" else None,
    uniform_mix=loss.motion_uniform_mix,
  )


def held_out_losses(variables, clips: jax.Array, *, model, loss: LossOptions = LossOptions()) -> jax.Array:
  """(B,) eval-mode reconstruction loss of each clip's centre frame, motion-weighted as the step's: the loss early
  stopping watches on held-out videos (the SSMCTB and mask-head terms, which score no reconstruction, left out)."""
  recon = model.apply(variables, clips, train=False)
  diff = clips[:, (clips.shape[1] - 1) // 2].astype(jnp.float32) - recon.astype(jnp.float32)
  norm = jnp.sqrt(jnp.sum(diff * diff, axis=-1) + 1e-12)
  weights = _motion_weights(clips, loss)
  return jnp.mean(norm if weights is None else weights * norm, axis=(1, 2))


def train_step(
  state: dict[str, Any],
  batch: dict[str, jax.Array],
  *,
  model,
  tx,
  loss: LossOptions = LossOptions(),
  augment: augment_lib.Options | None = None,
) -> tuple[dict[str, Any], dict[str, jax.Array]]:
  """One optimiser step; returns (new state, metrics).

  `batch` holds 'clips' and, when anomalies were pasted into them, the clean centre frames
  'target' and the pasted pixels 'anomaly_map' (B, H, W); without a map the mask head learns all zeros.
  `augment` transforms the batch first (`augment.augment_batch`) with a key drawn from the state's rng; without it
  the rng is split as it always was, so runs without augmentation are unchanged.
  """
  if augment is None:
    rng, step_rng = jax.random.split(state["rng"])
  else:
    rng, step_rng, key = jax.random.split(state["rng"], 3)
    batch = augment_lib.augment_batch(key, batch, augment)
  clips = batch["clips"]
  target = batch.get("target", clips[:, (clips.shape[1] - 1) // 2])
  weights = _motion_weights(clips, loss, batch.get("anomaly_map"))
  has_blocks = model.ssmctb.placement != "none"
  mutable = ["batch_stats", ssmctb.LOSS_COLLECTION] if has_blocks else ["batch_stats"]

  def loss_fn(params):
    out, updates = model.apply(
      {"params": params, "batch_stats": state["batch_stats"]},
      clips,
      train=True,
      return_mask=model.mask_head,
      mutable=mutable,
      rngs={"dropout": step_rng},
    )
    recon, mask = out if model.mask_head else (out, None)
    total = (
      losses.norm_loss(target, recon) if weights is None else motion.motion_weighted_norm_loss(target, recon, weights)
    )
    if has_blocks:
      total = total + ssmctb.total_ssl_loss(updates)
    extra = {}
    if mask is not None:
      anomaly_map = batch.get("anomaly_map", jnp.zeros(mask.shape, jnp.float32))
      extra["mask_loss"] = losses.mask_bce(anomaly_map, mask)
      total = total + loss.mask_loss_weight * extra["mask_loss"]
    return total, (updates["batch_stats"], extra)

  (total, (batch_stats, extra)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
  new_state = apply_gradients(state, grads, tx=tx, batch_stats=batch_stats, rng=rng)
  return new_state, {"loss": total, "grad_norm": optax.tree.norm(grads), **extra}
