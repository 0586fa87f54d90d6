"""AED-MAE's train step (Ristea et al., CVPR 2024, Sec. 3): a pure function of (state, batch) for either stage.

Stage 1 trains the teacher: the backbone and the teacher head on Eq. 3 (motion-weighted reconstruction of the clean
frame and its anomaly map) plus Eq. 5 (BCE of the classification head). Stage 2 trains the student alone on Eq. 4
(self-distillation from the teacher's output, same weights), with the backbone on BatchNorm's running averages and
no gradient past the branch point. Both stages share one state structure; the optimiser
(`optim.two_stage_optimizer`) gates the parameter groups on its update count, so a step run in the wrong stage
changes nothing it should not. The stage is static: the loop picks it on the host from the step number
(`state.stage_of`) and compiles each stage's step once. Not `jax.lax.cond` on `state['step']`: XLA:CPU runs a
conditional's branches far slower than the same ops outside one (the stage-1 gradient of the paper's network on
8 frames of 64 x 128: 1.9 s alone, 35 s as a cond branch), and computing both stages to select one costs up to 3x.

Clips (B, T, H, W, C) become the model's input here: frames centre - offset, centre and centre + offset stacked on
the channel axis (the authors' `input_3d`), the centre as the network sees it (with any pasted object). Targets and
motion weights follow `aed_mae_losses.stage1_loss`: the clean centre frame ('target' when objects were pasted) and
the clip's previous frame. The clean previous frame is not in the batch, so on a pasted clip its object's
position one frame earlier also counts as motion; that region borders the pasted pixels, whose anomaly map
outweighs any gradient there anyway.
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax

from maskedskip_jax.nn import aed_mae
from maskedskip_jax.nn import aed_mae_losses
from maskedskip_jax.train import step as step_lib

VARIANT = "aed_mae"  # model.variant of this family
PARTS = ("reconstruction", "classification", "self_distillation")  # the loss terms logged beside the total


@dataclasses.dataclass(frozen=True)
class StageOptions:
  """stage: 1 trains the teacher, 2 the student. frame_offset: see `stacked`. parts: the paper's components that
  are on (Table 2's ablation; all by default)."""

  stage: int
  frame_offset: int = 3
  parts: aed_mae_losses.Components = aed_mae_losses.Components()


# model.aed_mae keys that are not fields of the network: the input's frame spacing and Table 2's switches.
COMPONENT_KEYS = ("motion_weights", "anomaly_maps", "classifier")
NOT_NETWORK_KEYS = ("frame_offset", *COMPONENT_KEYS)


def stage_options(section, stage: int) -> StageOptions:
  """The options of `stage` from a config's model.aed_mae section."""
  parts = aed_mae_losses.Components(section.motion_weights, section.anomaly_maps, section.classifier)
  return StageOptions(stage, section.frame_offset, parts)


def stacked(clips: jax.Array, offset: int) -> jax.Array:
  """(B, T, H, W, C) clips -> (B, H, W, 3C): frames centre - offset, centre, centre + offset on the channel axis."""
  centre = (clips.shape[1] - 1) // 2
  return jnp.concatenate([clips[:, centre - offset], clips[:, centre], clips[:, centre + offset]], axis=-1)


def stacked_shape(clip_shape: tuple[int, ...]) -> tuple[int, ...]:
  """The model's input shape (B, H, W, 3C) for clips of `clip_shape` (B, T, H, W, C)."""
  b, _, h, w, c = clip_shape
  return (b, h, w, 3 * c)


def _keep_student(old: dict, new: dict) -> dict:
  """`new` batch statistics with the student's taken from `old`: stage 1 runs the student but must not move it."""
  return {name: old[name] if aed_mae.label_of(name) == "student" else value for name, value in new.items()}


def train_step(
  state: dict[str, Any], batch: dict[str, jax.Array], *, model: aed_mae.AedMae, tx, options: StageOptions
) -> tuple[dict[str, Any], dict[str, jax.Array]]:
  """One optimiser step of stage `options.stage`; returns (new state, metrics).

  `batch` holds 'clips' in [0, 1] and, when objects were pasted into them, the clean centre frames 'target' and
  the pasted pixels 'anomaly_map' (B, H, W); without a map every frame is normal (label 0, an all-zero map).
  Metrics: the loss, the stage, the gradient norm and `PARTS` (0 for the other stage's terms, so that both
  stages' metrics have one structure).
  """
  assert options.stage in (1, 2), options.stage
  clips = batch["clips"]
  centre = (clips.shape[1] - 1) // 2
  x = stacked(clips, options.frame_offset)
  frame = batch.get("target", clips[:, centre])
  previous = clips[:, centre - 1]
  anomaly_map = batch.get("anomaly_map", jnp.zeros(frame.shape[:3], jnp.float32))
  rng, masking, dropout = jax.random.split(state["rng"], 3)
  rngs = {"masking": masking, "dropout": dropout}

  stage1 = options.stage == 1

  def loss_fn(params):
    out, updates = model.apply(
      {"params": params, "batch_stats": state["batch_stats"]},
      x,
      train=True,
      freeze_backbone=not stage1,
      mutable=["batch_stats"],
      rngs=rngs,
    )
    loss = aed_mae_losses.stage1_loss if stage1 else aed_mae_losses.stage2_loss
    total, parts = loss(out, frame, previous, anomaly_map, model.patch, options.parts)
    stats = updates["batch_stats"]
    return total, (_keep_student(state["batch_stats"], stats) if stage1 else stats, parts)

  (total, (batch_stats, parts)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
  new_state = step_lib.apply_gradients(state, grads, tx=tx, batch_stats=batch_stats, rng=rng)
  parts = {k: parts.get(k, jnp.zeros((), jnp.float32)) for k in PARTS}
  metrics = {"loss": total, "stage": jnp.int32(options.stage), "grad_norm": optax.tree.norm(grads), **parts}
  return new_state, metrics
