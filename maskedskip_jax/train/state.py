"""The training state and what builds it: the model and optimiser from a config, the state at step 0, its
shapes for restoring, and the weights of a workdir's checkpoint for evaluation and export.

The state is a plain dict {params, batch_stats, opt_state, step, rng}, replicated over the mesh.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax

from maskedskip_jax import config as config_lib
from maskedskip_jax import validation
from maskedskip_jax.errors import UserError
from maskedskip_jax.nn import dtypes
from maskedskip_jax.nn import initialization
from maskedskip_jax.nn import models
from maskedskip_jax.train import checkpointing
from maskedskip_jax.train import optim
from maskedskip_jax.train import sharding

# Keys whose change makes a workdir's checkpoints belong to another experiment.
MUST_MATCH = (
  "model.variant",
  "model.latent_dim",
  "model.temporal",
  "model.masked_kernels",
  "model.mask_head",
  "data.image_size",
  "data.channels",
)


def build_model(config) -> models.MaskedSkipUNet:
  m = config.model
  return models.build(
    m.variant,
    latent_dim=m.latent_dim,
    channels=config.data.channels,
    temporal=m.temporal,
    centre_only=m.centre_only,
    dtype=dtypes.compute_dtype(config.train.compute_dtype),
    ssmctb=dict(m.ssmctb),
    conv_lowering=m.conv_lowering,
    mask_head=m.mask_head,
  )


def build_optimizer(config, total_steps: int) -> optax.GradientTransformation:
  t = config.train
  return optim.make_optimizer(
    t.learning_rate,
    masked_kernels=config.model.masked_kernels,
    schedule=t.schedule,
    total_steps=total_steps,
    warmup_steps=t.warmup_steps,
    grad_clip_norm=t.grad_clip_norm,
  )


def clip_shape(config) -> tuple[int, ...]:
  """One clip's shape as the model sees it: (1, T, H, W, C)."""
  return (1, config.model.temporal, *config.data.image_size, config.data.channels)


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
  return jax.eval_shape(
    lambda: _state(model.init(jax.random.key(0), jnp.zeros(input_shape, jnp.float32), train=False), tx=tx, seed=0)
  )


def abstract_state(*, model, tx, input_shape, placement) -> dict[str, Any]:
  """state_shapes with each leaf placed by `placement`: the target of a checkpoint restore."""
  return jax.tree.map(
    lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=placement),
    state_shapes(model=model, tx=tx, input_shape=input_shape),
  )


def init_state(seed: int, *, model, tx, input_shape, placement=None) -> dict[str, Any]:
  """The state at step 0; `seed` fixes the parameters and the step rng.

  Parameters are drawn on the host by initialization.init_variables: `model.init` would compile
  one random draw per parameter into XLA, which takes a minute or more on a CPU. The
  state is placed with `placement` (a sharding; default: replicated over all devices).
  """
  seed = int(seed)
  placement = placement or sharding.replicated(sharding.make_mesh())
  host = initialization.init_variables(model, seed, input_shape)
  # Every process computes the same values, so each fills its own devices' copies.
  variables = jax.tree.map(
    lambda x: jax.make_array_from_callback(x.shape, placement, lambda index, x=x: x[index]), host
  )
  return jax.jit(functools.partial(_state, tx=tx, seed=seed), out_shardings=placement)(variables)


def check_same_experiment(meta: dict[str, Any], config, directory: str) -> None:
  """Refuses a config that differs from a checkpoint's in a key that changes the experiment (MUST_MATCH)."""
  saved, now = meta.get("config", {}), config_lib.to_json(config)
  for key in MUST_MATCH:
    if key in saved and saved[key] != now[key]:
      raise UserError(
        f"{directory}: checkpoints were trained with {key}={saved[key]!r}, the config says "
        f"{now[key]!r}; use a new --workdir or the original config"
      )


def restore_variables(config, workdir: str, step: int | None = None):
  """(model, {'params', 'batch_stats'}, step) of a workdir's newest (or given) checkpoint; for eval/export."""
  validation.validate(config)
  model = build_model(config)
  mngr = checkpointing.manager(workdir, read_only=True)
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
