"""Training: the state pytree, one jitted `train_step`, and the loop around it.

The state is a plain dict {params, batch_stats, opt_state, step, rng}, replicated
over the mesh; batches are sharded on its 'data' axis. The loop restores the
newest checkpoint of the workdir (state and, through `step`, the data position),
so a restarted run ends with exactly the parameters of an uninterrupted one.
"""

import functools
import os
import sys
import time
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm

from maskedskip_jax import checkpointing
from maskedskip_jax import config_check
from maskedskip_jax import losses
from maskedskip_jax import models
from maskedskip_jax import motion
from maskedskip_jax import optim
from maskedskip_jax import sharding
from maskedskip_jax import ssmctb
from maskedskip_jax import train_data
from maskedskip_jax import train_progress
from maskedskip_jax.errors import UserError

# Keys whose change makes a workdir's checkpoints belong to another experiment.
_MUST_MATCH = ("model.variant", "model.latent_dim", "model.temporal", "model.masked_kernels", "model.mask_head",
               "data.image_size", "data.channels")


def compute_dtype(name: str, backend: str | None = None):
  """'auto' is bfloat16 on GPU/TPU but float32 on CPU, where XLA's bf16 convs crawl."""
  if name == "auto":
    name = "float32" if (backend or jax.default_backend()) == "cpu" else "bfloat16"
  return {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[name]


def build_model(config) -> models.MaskedSkipUNet:
  m = config.model
  return models.build(m.variant, latent_dim=m.latent_dim, channels=config.data.channels, temporal=m.temporal,
                      centre_only=m.centre_only, dtype=compute_dtype(config.train.compute_dtype),
                      ssmctb=dict(m.ssmctb), conv_lowering=m.conv_lowering, mask_head=m.mask_head)


def build_optimizer(config, total_steps: int) -> optax.GradientTransformation:
  t = config.train
  return optim.make_optimizer(t.learning_rate, masked_kernels=config.model.masked_kernels, schedule=t.schedule,
                              total_steps=total_steps, warmup_steps=t.warmup_steps, grad_clip_norm=t.grad_clip_norm)


def _state(variables, *, tx, seed: int) -> dict[str, Any]:
  return dict(params=variables["params"], batch_stats=variables["batch_stats"],
              opt_state=tx.init(variables["params"]), step=jnp.zeros((), jnp.int32),
              rng=jax.random.PRNGKey(seed))


def state_shapes(*, model, tx, input_shape) -> dict[str, Any]:
  """The state's shapes and dtypes (jax.ShapeDtypeStruct leaves), traced only, for restoring."""
  return jax.eval_shape(lambda: _state(model.init(jax.random.key(0), jnp.zeros(input_shape, jnp.float32),
                                                  train=False), tx=tx, seed=0))


def init_state(seed: int, *, model, tx, input_shape, placement=None) -> dict[str, Any]:
  """The state at step 0; `seed` fixes the parameters and the step rng.

  Parameters are drawn on the host by models.init_variables: `model.init` would compile
  one random draw per parameter into XLA, which takes a minute or more on a CPU. The
  state is placed with `placement` (a sharding; default: replicated over all devices).
  """
  seed = int(seed)
  placement = placement or sharding.replicated(sharding.make_mesh())
  host = models.init_variables(model, seed, input_shape)
  # Every process computes the same values, so each fills its own devices' copies.
  variables = jax.tree.map(
      lambda x: jax.make_array_from_callback(x.shape, placement, lambda index, x=x: x[index]), host)
  return jax.jit(functools.partial(_state, tx=tx, seed=seed), out_shardings=placement)(variables)


def train_step(state: dict[str, Any], batch: dict[str, jax.Array], *, model, tx, motion_weighting: str = "none",
               motion_median: int = 0, motion_patch: int = 16, motion_uniform_mix: float = 0.0,
               mask_loss_weight: float = 1.0) -> tuple[dict[str, Any], dict[str, jax.Array]]:
  """One Adam step on the norm loss of the centre frame's reconstruction.

  `batch` holds 'clips' and, when anomalies were pasted into them, the clean centre frames
  'target' and the pasted pixels 'anomaly_map' (B, H, W). motion_*: the loss weighting of
  motion.motion_weights ('none', 'pixel' or 'patch'). SSMCTB blocks add their own losses; a
  mask head adds mask_loss_weight * the BCE of its map against 'anomaly_map' (all zeros when absent).
  """
  clips = batch["clips"]
  target = batch.get("target", clips[:, (clips.shape[1] - 1) // 2])
  rng, step_rng = jax.random.split(state["rng"])
  weights = None
  if motion_weighting != "none":
    weights = motion.motion_weights(clips, median=motion_median, anomaly_maps=batch.get("anomaly_map"),
                                    patch=motion_patch if motion_weighting == "patch" else None,
                                    uniform_mix=motion_uniform_mix)
  has_blocks = model.ssmctb.placement != "none"
  mutable = ["batch_stats", ssmctb.LOSS_COLLECTION] if has_blocks else ["batch_stats"]

  def loss_fn(params):
    out, updates = model.apply({"params": params, "batch_stats": state["batch_stats"]}, clips, train=True,
                               return_mask=model.mask_head, mutable=mutable, rngs={"dropout": step_rng})
    recon, mask = out if model.mask_head else (out, None)
    loss = losses.norm_loss(target, recon) if weights is None else motion.motion_weighted_norm_loss(
        target, recon, weights)
    if has_blocks:
      loss = loss + ssmctb.total_ssl_loss(updates)
    extra = {}
    if mask is not None:
      anomaly_map = batch.get("anomaly_map", jnp.zeros(mask.shape, jnp.float32))
      extra["mask_loss"] = losses.mask_bce(anomaly_map, mask)
      loss = loss + mask_loss_weight * extra["mask_loss"]
    return loss, (updates["batch_stats"], extra)

  (loss, (batch_stats, extra)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
  updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
  new_state = dict(params=optax.apply_updates(state["params"], updates), batch_stats=batch_stats,
                   opt_state=opt_state, step=state["step"] + 1, rng=rng)
  return new_state, {"loss": loss, "grad_norm": optax.tree.norm(grads), **extra}


def step_options(config) -> dict[str, Any]:
  """The config values train_step takes."""
  t = config.train
  return dict(motion_weighting=t.motion_weighting, motion_median=t.motion_median, motion_patch=t.motion_patch,
              motion_uniform_mix=t.motion_uniform_mix, mask_loss_weight=t.mask_loss_weight)


def enable_compilation_cache(cache_dir: str) -> None:
  if cache_dir:
    jax.config.update("jax_compilation_cache_dir", os.path.expanduser(cache_dir))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def _json_config(config) -> dict[str, Any]:
  return {k: list(v) if isinstance(v, tuple) else v for k, v in config_check.flatten(config).items()}


def _check_same_experiment(meta: dict[str, Any], config, directory: str) -> None:
  saved, now = meta.get("config", {}), _json_config(config)
  for key in _MUST_MATCH:
    if key in saved and saved[key] != now[key]:
      raise UserError(f"{directory}: checkpoints were trained with {key}={saved[key]!r}, the config says "
                      f"{now[key]!r}; use a new --workdir or the original config")


def _check_writable(workdir: str) -> None:
  """Fail before the slow start-up work, not at the first checkpoint."""
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, f".write-test-{os.getpid()}")
    with open(probe, "w"):
      pass
    os.remove(probe)
  except OSError as e:
    raise UserError(f"--workdir {workdir}: not writable ({e.strerror}); pick a folder you can write to") from None


def _abstract(tree, sharding_):
  return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding_), tree)


def _say(message: str) -> None:
  """User-facing progress lines (process 0), kept clear of the progress bar."""
  logging.info(message)
  if jax.process_index() == 0:
    tqdm.tqdm.write(message, file=sys.stderr)  # where the bar is


def restore_variables(config, workdir: str, step: int | None = None):
  """(model, {'params', 'batch_stats'}, step) of a workdir's newest (or given) checkpoint; for eval/export."""
  config_check.validate(config)
  model = build_model(config)
  mngr = checkpointing.manager(workdir, read_only=True)
  shape = (1, config.model.temporal, *config.data.image_size, config.data.channels)
  abstract = _abstract(state_shapes(model=model, tx=build_optimizer(config, 1), input_shape=shape),
                       sharding.replicated(sharding.make_mesh()))
  try:
    _check_same_experiment(checkpointing.read_meta(mngr, step), config, mngr.directory)
    state, meta = checkpointing.restore(mngr, abstract, step)
  finally:
    mngr.close()
  return model, {"params": state["params"], "batch_stats": state["batch_stats"]}, int(meta["step"])


def train(config, workdir: str) -> dict[str, Any]:
  """Train (or resume) in `workdir`; returns {'step', 'preempted', 'checkpoint_dir'}."""
  config_check.validate(config)
  _check_writable(workdir)
  enable_compilation_cache(config.train.compilation_cache_dir)
  c, t = config, config.train
  mesh = sharding.make_mesh()
  repl, data_sharding = sharding.replicated(mesh), sharding.batch_sharding(mesh)
  sharding.local_batch_size(t.batch_size, mesh)  # raises unless the batch splits evenly

  from data_pipeline import pipeline  # pylint: disable=g-import-not-at-top
  store = train_data.load_split(c, workdir, "train")
  steps_per_epoch = pipeline.steps_per_epoch(store, t.batch_size, c.model.temporal, c.data.stride)
  total = t.num_steps if t.num_steps > 0 else t.epochs * steps_per_epoch
  model, tx = build_model(c), build_optimizer(c, total)
  input_shape = (1, c.model.temporal, *c.data.image_size, c.data.channels)

  mngr = checkpointing.manager(workdir, keep=t.keep_checkpoints, async_save=t.async_checkpoints)
  meta = {"config": _json_config(c)}
  latest = mngr.latest_step()
  if latest is None:
    state = init_state(t.seed, model=model, tx=tx, input_shape=input_shape, placement=repl)
  else:
    _check_same_experiment(checkpointing.read_meta(mngr, latest), c, mngr.directory)
    state, _ = checkpointing.restore(mngr, _abstract(state_shapes(model=model, tx=tx, input_shape=input_shape), repl), latest)
    _say(f"resumed from {mngr.directory}/{latest}")
  start = int(np.asarray(state["step"]))
  _say(f"training {total} steps ({steps_per_epoch} per epoch, batch {t.batch_size} over {mesh.devices.size} "
       f"device(s), {jax.process_count()} process(es)) in {os.path.abspath(workdir)}")

  step_fn = jax.jit(functools.partial(train_step, model=model, tx=tx, **step_options(c)), donate_argnums=0,
                    in_shardings=(repl, data_sharding), out_shardings=(repl, repl))
  batches = pipeline.train_iterator(store, t.batch_size, c.model.temporal, c.data.stride, t.seed, start_step=start,
                                    process_index=jax.process_index(), process_count=jax.process_count(),
                                    backend=c.data.backend)
  if t.paste_prob > 0:
    batches = train_data.with_pasted_anomalies(batches, start=start, seed=t.seed, p=t.paste_prob, source=t.paste_source,
                                    row_offset=jax.process_index() * sharding.local_batch_size(t.batch_size, mesh))
  batches = sharding.prefetch(batches, data_sharding, t.prefetch)

  progress = train_progress.Progress(c, workdir, start, total, optim.learning_rate_schedule(
      t.learning_rate, t.schedule, total, t.warmup_steps))
  progress.saved = latest
  watch = checkpointing.PreemptionWatch()
  preempted, compiled, pending = False, None, None
  try:
    for step in range(start, total):
      batch = next(batches)
      if compiled is None:
        begin = time.perf_counter()
        compiled = step_fn.lower(state, batch).compile()
        _say(f"compiled the train step in {time.perf_counter() - begin:.1f} s")
        progress.start_clock()
      state, metrics = compiled(state, batch)
      done = step + 1
      # The previous step's metrics are read while this one runs, keeping the device busy.
      if pending is not None:
        progress.check(*pending)
      pending = (done, metrics)
      preempted = watch.reached(done)
      if done % t.checkpoint_every_steps == 0 or done == total or preempted:
        progress.check(*pending)  # never save a state whose step blew up
        pending = None
        with checkpointing.disk_errors_as_user_errors(mngr.directory):
          if checkpointing.save(mngr, done, state, meta):
            progress.saved = done
      if preempted:
        _say(f"SIGTERM: saved step {done}; run the same command again to resume")
        break
    if pending is not None:
      progress.check(*pending)
  finally:
    watch.close()
    progress.close()
    with checkpointing.disk_errors_as_user_errors(mngr.directory):
      mngr.wait_until_finished()  # an async write in flight is the last good checkpoint
      mngr.close()
  return {"step": progress.last_good, "preempted": preempted, "checkpoint_dir": checkpointing.checkpoint_dir(workdir)}
