"""The optimiser: Adam (the reference's), optional schedule and clipping, masked-kernel mode."""

import optax

from maskedskip_jax.nn import models

MASKED_KERNEL_MODES = ("train", "frozen")
SCHEDULES = ("constant", "cosine", "warmup_cosine")


def learning_rate_schedule(
  learning_rate: float, schedule: str = "constant", total_steps: int = 0, warmup_steps: int = 0
) -> optax.Schedule:
  assert schedule in SCHEDULES, schedule  # config.validate checked train.schedule
  if schedule == "constant":
    return optax.constant_schedule(learning_rate)
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
) -> optax.GradientTransformation:
  """Adam over all params; with `masked_kernels='frozen'` masked-conv kernels never move.

  'frozen' reproduces the published PyTorch code, whose masked-conv weights never
  train (it re-creates their Parameter inside forward) while their biases do. It is
  done here, in the optimiser, so the model is the same in both modes.
  """
  assert masked_kernels in MASKED_KERNEL_MODES, masked_kernels  # config.validate checked model.masked_kernels
  lr = learning_rate_schedule(learning_rate, schedule, total_steps, warmup_steps)
  tx = optax.adam(lr)
  if grad_clip_norm > 0:
    tx = optax.chain(optax.clip_by_global_norm(grad_clip_norm), tx)
  if masked_kernels == "frozen":
    tx = optax.multi_transform({"free": tx, "masked": optax.set_to_zero()}, models.masked_kernel_labels)
  return tx
