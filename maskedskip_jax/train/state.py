"""The training state and what builds it: the model, optimiser and train step from a config, the state at step 0,
its shapes for restoring, and the weights of a workdir's checkpoint for evaluation and export.

The state is a plain dict {params, batch_stats, opt_state, step, rng}, replicated over the mesh. Three families
share it: MaskedSkipUNet's variants, AED-MAE (model.variant='aed_mae') and seed 003's CAE ('cae', no batch
statistics); `input_shape` is always a clip's (B, T, H, W, C), which AED-MAE's step turns into its stacked frames.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax

from maskedskip_jax import config as config_lib
from maskedskip_jax import validation
from maskedskip_jax.errors import UserError
from maskedskip_jax.nn import aed_mae
from maskedskip_jax.nn import cae
from maskedskip_jax.nn import dtypes
from maskedskip_jax.nn import initialization
from maskedskip_jax.nn import models
from maskedskip_jax.train import aed_mae_step
from maskedskip_jax.train import augment
from maskedskip_jax.train import cae_step
from maskedskip_jax.train import checkpointing
from maskedskip_jax.train import early_stopping
from maskedskip_jax.train import optim
from maskedskip_jax.train import sharding
from maskedskip_jax.train import step as step_lib

# Keys whose change makes a workdir's checkpoints belong to another experiment.
MUST_MATCH = (
  "model.variant",
  "model.latent_dim",
  "model.temporal",
  "model.masked_kernels",
  "model.mask_head",
  "data.image_size",
  "data.channels",
  "data.holdout_share",
)
# The same for AED-MAE's shapes, checked only when both runs are AED-MAE runs.
AED_MAE_MUST_MATCH = tuple(
  f"model.aed_mae.{k}"
  for k in ("patch", "frame_offset", "embed_dim", "depth", "decoder_dim", "decoder_depth", "student_depth", "heads")
)


def is_aed_mae(config) -> bool:
  return config.model.variant == aed_mae_step.VARIANT


def build_model(config) -> models.MaskedSkipUNet | aed_mae.AedMae | cae.Cae:
  m, dtype = config.model, dtypes.compute_dtype(config.train.compute_dtype)
  if is_aed_mae(config):
    # Every model.aed_mae key but the input's frame spacing is a field of the network.
    fields = {k: v for k, v in m.aed_mae.items() if k not in aed_mae_step.NOT_NETWORK_KEYS}
    return aed_mae.AedMae(channels=config.data.channels, dtype=dtype, **fields)
  return models.build(
    m.variant,
    latent_dim=m.latent_dim,
    channels=config.data.channels,
    temporal=m.temporal,
    centre_only=m.centre_only,
    dtype=dtype,
    ssmctb=dict(m.ssmctb),
    conv_lowering=m.conv_lowering,
    mask_head=m.mask_head,
  )


def stage1_steps(config, total_steps: int) -> int:
  """AED-MAE: the steps that train the teacher; the last round(train.stage2_fraction * total) train the student."""
  return total_steps - round(config.train.stage2_fraction * total_steps)


def _decay(config, steps_per_epoch: int) -> dict[str, Any]:
  """step_decay's keyword arguments: its factor, every train.decay_every_epochs epochs of `steps_per_epoch`."""
  t = config.train
  return dict(decay_every=t.decay_every_epochs * steps_per_epoch, decay_factor=t.decay_factor)


def learning_rate_schedule(config, total_steps: int, steps_per_epoch: int = 1) -> optax.Schedule:
  """The learning rate at each step, as `build_optimizer` schedules it (AED-MAE's stage 1)."""
  t = config.train
  return optim.learning_rate_schedule(
    t.learning_rate, t.schedule, total_steps, t.warmup_steps, **_decay(config, steps_per_epoch)
  )


def build_optimizer(config, total_steps: int, steps_per_epoch: int = 1) -> optax.GradientTransformation:
  """The optimiser; `steps_per_epoch` places step_decay's epochs (the optimiser state does not depend on it)."""
  t = config.train
  common = dict(schedule=t.schedule, warmup_steps=t.warmup_steps, grad_clip_norm=t.grad_clip_norm)
  if is_aed_mae(config):
    return optim.two_stage_optimizer(
      t.learning_rate,
      stage1_steps=stage1_steps(config, total_steps),
      total_steps=total_steps,
      **common,
      **_decay(config, steps_per_epoch),
    )
  return optim.make_optimizer(
    t.learning_rate,
    masked_kernels=config.model.masked_kernels,
    total_steps=total_steps,
    **common,
    **_decay(config, steps_per_epoch),
  )


def stage_of(config, step: int, total_steps: int) -> int:
  """The stage of the step taken from `step` (0-based): AED-MAE's 1 (teacher) or 2 (student); 0 for one stage."""
  if not is_aed_mae(config):
    return 0
  return 1 if step < stage1_steps(config, total_steps) else 2


def train_step_fn(config, *, model, tx, stage: int = 0):
  """The train step of the config's family and `stage` (`stage_of`), options bound: a function of (state, batch)."""
  if is_aed_mae(config):
    options = aed_mae_step.stage_options(config.model.aed_mae, stage, config.train.micro_batches)
    return functools.partial(aed_mae_step.train_step, model=model, tx=tx, options=options)
  kw = dict(model=model, tx=tx, augment=augment.Options.from_config(config))
  if isinstance(model, cae.Cae):
    return functools.partial(cae_step.train_step, loss=cae_step.HybridOptions.from_config(config), **kw)
  return functools.partial(step_lib.train_step, loss=step_lib.LossOptions.from_config(config), **kw)


def held_out_losses_fn(config, model):
  """(variables, clips) -> (B,) per-clip eval-mode losses of the config's family, for early stopping."""
  if isinstance(model, cae.Cae):
    return functools.partial(cae_step.held_out_losses, model=model, loss=cae_step.HybridOptions.from_config(config))
  return functools.partial(step_lib.held_out_losses, model=model, loss=step_lib.LossOptions.from_config(config))


def clip_shape(config) -> tuple[int, ...]:
  """One clip's shape as the data has it: (1, T, H, W, C)."""
  return (1, config.model.temporal, *config.data.image_size, config.data.channels)


def variable_shapes(model, input_shape) -> dict[str, Any]:
  """The model's variables' shapes and dtypes for clips of `input_shape`, traced only."""
  if isinstance(model, aed_mae.AedMae):
    return aed_mae.variable_shapes(model, aed_mae_step.stacked_shape(input_shape))
  if isinstance(model, cae.Cae):  # no BatchNorm: an empty collection keeps the state's structure
    return {"batch_stats": {}, **jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(input_shape)))}
  return jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(input_shape, jnp.float32), train=False))


def _state(variables, *, tx, seed: int) -> dict[str, Any]:
  return dict(
    params=variables["params"],
    batch_stats=variables["batch_stats"],
    opt_state=tx.init(variables["params"]),
    step=jnp.zeros((), jnp.int32),
    rng=jax.random.PRNGKey(seed),
  )


def state_shapes(*, model, tx, input_shape) -> dict[str, Any]:
  """The state's shapes and dtypes (jax.ShapeDtypeStruct leaves), traced only, for restoring."""
  return jax.eval_shape(functools.partial(_state, tx=tx, seed=0), variable_shapes(model, input_shape))


def abstract_state(*, model, tx, input_shape, placement) -> dict[str, Any]:
  """state_shapes with each leaf placed by `placement`: the target of a checkpoint restore."""
  return jax.tree.map(
    lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=placement),
    state_shapes(model=model, tx=tx, input_shape=input_shape),
  )


def init_state(seed: int, *, model, tx, input_shape, placement=None) -> dict[str, Any]:
  """The state at step 0; `seed` fixes the parameters and the step rng.

  Parameters are drawn on the host by initialization.init_variables (aed_mae.init_variables for AED-MAE):
  `model.init` would compile one random draw per parameter into XLA, which takes a minute or more on a CPU. The
  state is placed with `placement` (a sharding; default: replicated over all devices).
  """
  seed = int(seed)
  placement = placement or sharding.replicated(sharding.make_mesh())
  if isinstance(model, aed_mae.AedMae):
    host = aed_mae.init_variables(model, seed, aed_mae_step.stacked_shape(input_shape))
  elif isinstance(model, cae.Cae):
    host = cae.init_variables(model, seed, input_shape)
  else:
    host = initialization.init_variables(model, seed, input_shape)
  # Every process computes the same values, so each fills its own devices' copies.
  variables = jax.tree.map(
    lambda x: jax.make_array_from_callback(x.shape, placement, lambda index, x=x: x[index]), host
  )
  return jax.jit(functools.partial(_state, tx=tx, seed=seed), out_shardings=placement)(variables)


def check_same_experiment(meta: dict[str, Any], config, directory: str) -> None:
  """Refuses a config that differs from a checkpoint's in a key that changes the experiment (MUST_MATCH)."""
  saved, now = meta.get("config", {}), config_lib.to_json(config)
  both_aed_mae = saved.get("model.variant") == now["model.variant"] == aed_mae_step.VARIANT
  for key in MUST_MATCH + (AED_MAE_MUST_MATCH if both_aed_mae else ()):
    if key in saved and saved[key] != now[key]:
      raise UserError(
        f"{directory}: checkpoints were trained with {key}={saved[key]!r}, the config says "
        f"{now[key]!r}; use a new --workdir or the original config"
      )


def checkpoints_used(config, workdir: str) -> str:
  """The workdir-like folder evaluation and export restore from: with early stopping, the best state's."""
  if config.train.early_stopping_patience > 0 and early_stopping.has_best(workdir):
    return early_stopping.best_workdir(workdir)
  return workdir


def restore_variables(config, workdir: str, step: int | None = None):
  """(model, {'params', 'batch_stats'}, step) of a workdir's newest (or given) checkpoint; for eval/export.

  With train.early_stopping_patience > 0 that is the state with the lowest held-out loss (`early_stopping`).
  """
  validation.validate(config)
  model = build_model(config)
  mngr = checkpointing.manager(checkpoints_used(config, workdir), read_only=True)
  abstract = abstract_state(
    model=model,
    tx=build_optimizer(config, 1),
    input_shape=clip_shape(config),
    placement=sharding.replicated(sharding.make_mesh()),
  )
  try:
    check_same_experiment(checkpointing.read_meta(mngr, step), config, mngr.directory)
    state, meta = checkpointing.restore(mngr, abstract, step)
  finally:
    mngr.close()
  return model, {"params": state["params"], "batch_stats": state["batch_stats"]}, int(meta["step"])
