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
import functools
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
  are on (Table 2's ablation; all by default). micro_batches: see `train_step`."""

  stage: int
  frame_offset: int = 3
  parts: aed_mae_losses.Components = aed_mae_losses.Components()
  micro_batches: int = 1  # the batch's parts whose gradients are averaged before the one update (`train_step`)


# model.aed_mae keys that are not fields of the network: the input's frame spacing and Table 2's switches.
COMPONENT_KEYS = ("motion_weights", "anomaly_maps", "classifier")
NOT_NETWORK_KEYS = ("frame_offset", *COMPONENT_KEYS)


def stage_options(section, stage: int, micro_batches: int = 1) -> StageOptions:
  """The options of `stage` from a config's model.aed_mae section (and train.micro_batches)."""
  parts = aed_mae_losses.Components(section.motion_weights, section.anomaly_maps, section.classifier)
  return StageOptions(stage, section.frame_offset, parts, micro_batches)


def stacked(clips: jax.Array, offset: int) -> jax.Array:
  """(B, T, H, W, C) clips -> (B, H, W, 3C): frames centre - offset, centre, centre + offset on the channel axis."""
  centre = (clips.shape[1] - 1) // 2
  return jnp.concatenate([clips[:, centre - offset], clips[:, centre], clips[:, centre + offset]], axis=-1)


def stacked_shape(clip_shape: tuple[int, ...]) -> tuple[int, ...]:
  """The model's input shape (B, H, W, 3C) for clips of `clip_shape` (B, T, H, W, C)."""
  b, _, h, w, c = clip_shape
  return (b, h, w, 3 * c)


def step_inputs(batch: dict[str, jax.Array], frame_offset: int) -> dict[str, jax.Array]:
  """What `gradients` reads of a batch (see `train_step`): the stacked input 'x', the clean target 'frame', the
  frame before it 'previous' and the pasted pixels 'anomaly_map' (all zero where nothing was pasted)."""
  clips = batch["clips"]
  centre = (clips.shape[1] - 1) // 2
  frame = batch.get("target", clips[:, centre])
  return {
    "x": stacked(clips, frame_offset),
    "frame": frame,
    "previous": clips[:, centre - 1],
    "anomaly_map": batch.get("anomaly_map", jnp.zeros(frame.shape[:3], jnp.float32)),
  }


def _keep_student(old: dict, new: dict) -> dict:
  """`new` batch statistics with the student's taken from `old`: stage 1 runs the student but must not move it."""
  return {name: old[name] if aed_mae.label_of(name) == "student" else value for name, value in new.items()}


def gradients(params, batch_stats, inputs: dict[str, jax.Array], rngs, *, model: aed_mae.AedMae, options):
  """((loss, (new batch statistics, loss parts)), gradients) of one batch or micro-batch.

  `inputs`: 'x' (the stacked input), 'frame' (the clean target), 'previous' and 'anomaly_map', as `train_step`
  builds them; `rngs`: the 'masking' and 'dropout' keys.
  """
  stage1 = options.stage == 1

  def loss_fn(p):
    out, updates = model.apply(
      {"params": p, "batch_stats": batch_stats},
      inputs["x"],
      train=True,
      freeze_backbone=not stage1,
      mutable=["batch_stats"],
      rngs=rngs,
    )
    loss = aed_mae_losses.stage1_loss if stage1 else aed_mae_losses.stage2_loss
    total, parts = loss(out, inputs["frame"], inputs["previous"], inputs["anomaly_map"], model.patch, options.parts)
    stats = updates["batch_stats"]
    return total, (_keep_student(batch_stats, stats) if stage1 else stats, parts)

  return jax.value_and_grad(loss_fn, has_aux=True)(params)


def _accumulated(state, inputs, rngs, *, model, options):
  """`gradients` averaged over `options.micro_batches` equal parts of the batch, in order: part i uses the keys
  folded with i, and sees the batch statistics the parts before it left. Loss and parts are averaged too."""
  k = options.micro_batches
  split = jax.tree.map(lambda a: a.reshape(k, a.shape[0] // k, *a.shape[1:]), inputs)
  grad = functools.partial(gradients, model=model, options=options)

  def body(carry, xs):
    stats, acc = carry
    i, part = xs
    keys = {name: jax.random.fold_in(key, i) for name, key in rngs.items()}
    (total, (stats, parts)), grads = grad(state["params"], stats, part, keys)
    return (stats, jax.tree.map(jnp.add, acc, (total, parts, grads))), None

  first = jax.tree.map(lambda a: a[0], split)
  shapes = jax.eval_shape(grad, state["params"], state["batch_stats"], first, rngs)
  zeros = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), (shapes[0][0], shapes[0][1][1], shapes[1]))
  (stats, acc), _ = jax.lax.scan(body, (state["batch_stats"], zeros), (jnp.arange(k), split))
  total, parts, grads = jax.tree.map(lambda a: a / k, acc)
  return (total, (stats, parts)), grads


def train_step(
  state: dict[str, Any], batch: dict[str, jax.Array], *, model: aed_mae.AedMae, tx, options: StageOptions
) -> tuple[dict[str, Any], dict[str, jax.Array]]:
  """One optimiser step of stage `options.stage`; returns (new state, metrics).

  `batch` holds 'clips' in [0, 1] and, when objects were pasted into them, the clean centre frames 'target' and
  the pasted pixels 'anomaly_map' (B, H, W); without a map every frame is normal (label 0, an all-zero map).
  Metrics: the loss, the stage, the gradient norm and `PARTS` (0 for the other stage's terms, so that both
  stages' metrics have one structure). With `options.micro_batches` k > 1 the batch is taken in k parts one after
  another and their gradients averaged (`_accumulated`): the paper's batch of 100 in a fifth of the activation
  memory, the same update but for BatchNorm, whose statistics are each part's.
  """
  assert options.stage in (1, 2), options.stage
  inputs = step_inputs(batch, options.frame_offset)
  rng, masking, dropout = jax.random.split(state["rng"], 3)
  rngs = {"masking": masking, "dropout": dropout}
  if options.micro_batches > 1:
    (total, (batch_stats, parts)), grads = _accumulated(state, inputs, rngs, model=model, options=options)
  else:
    (total, (batch_stats, parts)), grads = gradients(
      state["params"], state["batch_stats"], inputs, rngs, model=model, options=options
    )
  new_state = step_lib.apply_gradients(state, grads, tx=tx, batch_stats=batch_stats, rng=rng)
  parts = {k: parts.get(k, jnp.zeros((), jnp.float32)) for k in PARTS}
  metrics = {"loss": total, "stage": jnp.int32(options.stage), "grad_norm": optax.tree.norm(grads), **parts}
  return new_state, metrics
