"""The optimisers: Adam (the reference's), optional schedule and clipping, masked-kernel mode; AED-MAE's two stages."""

import optax

from maskedskip_jax.nn import aed_mae
from maskedskip_jax.nn import models

MASKED_KERNEL_MODES = ("train", "frozen")
SCHEDULES = ("constant", "cosine", "warmup_cosine", "step_decay")


def learning_rate_schedule(
  learning_rate: float,
  schedule: str = "constant",
  total_steps: int = 0,
  warmup_steps: int = 0,
  *,
  decay_every: int = 1,
  decay_factor: float = 1.0,
) -> optax.Schedule:
  """`schedule` over `total_steps`; 'step_decay' multiplies the rate by `decay_factor` after every `decay_every`
  steps (seed 003: x0.95 every 10 epochs), and holds it in between."""
  assert schedule in SCHEDULES, schedule  # config.validate checked train.schedule
  if schedule == "constant":
    return optax.constant_schedule(learning_rate)
  if schedule == "step_decay":
    return optax.exponential_decay(learning_rate, max(decay_every, 1), decay_factor, staircase=True)
  if schedule == "cosine":
    return optax.cosine_decay_schedule(learning_rate, max(total_steps, 1))
  return optax.warmup_cosine_decay_schedule(0.0, learning_rate, warmup_steps, max(total_steps, warmup_steps + 1))


def make_optimizer(
  learning_rate: float,
  *,
  masked_kernels: str = "train",
  schedule: str = "constant",
  total_steps: int = 0,
  warmup_steps: int = 0,
  grad_clip_norm: float = 0.0,
  decay_every: int = 1,
  decay_factor: float = 1.0,
) -> optax.GradientTransformation:
  """Adam over all params; with `masked_kernels='frozen'` masked-conv kernels never move.

  'frozen' reproduces the published PyTorch code, whose masked-conv weights never
  train (it re-creates their Parameter inside forward) while their biases do. It is
  done here, in the optimiser, so the model is the same in both modes.
  """
  assert masked_kernels in MASKED_KERNEL_MODES, masked_kernels  # config.validate checked model.masked_kernels
  lr = learning_rate_schedule(
    learning_rate, schedule, total_steps, warmup_steps, decay_every=decay_every, decay_factor=decay_factor
  )
  tx = optax.adam(lr)
  if grad_clip_norm > 0:
    tx = optax.chain(optax.clip_by_global_norm(grad_clip_norm), tx)
  if masked_kernels == "frozen":
    tx = optax.multi_transform({"free": tx, "masked": optax.set_to_zero()}, models.masked_kernel_labels)
  return tx


def two_stage_optimizer(
  learning_rate: float,
  *,
  stage1_steps: int,
  total_steps: int,
  schedule: str = "constant",
  warmup_steps: int = 0,
  grad_clip_norm: float = 0.0,
  decay_every: int = 1,
  decay_factor: float = 1.0,
) -> optax.GradientTransformation:
  """AED-MAE's two stages as one transformation: Adam on the backbone and the teacher head for the first
  `stage1_steps` updates, then Adam on the student alone.

  One transformation, so the optimiser state has the same tree in both stages and a checkpoint from either
  restores into it. `optax.transforms.conditionally_mask` gates each group on its own update count (which equals
  the state's step): outside its stage a group gets exact zeros and its Adam state is left as it was. The
  student's Adam thus starts at stage 2 from count 0, as a separate second training would, rather than from
  moments and a bias correction decayed through stage 1 (what a step-dependent learning rate on one Adam would
  give). Each stage's schedule runs over that stage's length.
  """
  stage2_steps = total_steps - stage1_steps

  def adam(steps):
    decay = dict(decay_every=decay_every, decay_factor=decay_factor)
    return optax.adam(learning_rate_schedule(learning_rate, schedule, steps, warmup_steps, **decay))

  teacher = optax.transforms.conditionally_mask(adam(stage1_steps), lambda count: count < stage1_steps)
  student = optax.transforms.conditionally_mask(adam(stage2_steps), lambda count: count >= stage1_steps)
  tx = optax.multi_transform(
    {"backbone": teacher, "teacher_head": teacher, "student": student}, aed_mae.backbone_labels
  )
  return optax.chain(optax.clip_by_global_norm(grad_clip_norm), tx) if grad_clip_norm > 0 else tx
