"""The training loop: batches sharded on the mesh's 'data' axis through one jitted step, checkpoints, progress.

The loop restores the newest checkpoint of the workdir (state and, through `step`, the data position), so a
restarted run ends with exactly the parameters of an uninterrupted one. With train.early_stopping_patience it
scores the held-out training videos after every epoch and stops when they stop improving (`early_stopping`).
"""

import os
import sys
import time
from typing import Any

from absl import logging
import jax
import numpy as np

from maskedskip_jax import config as config_lib
from maskedskip_jax import validation
from maskedskip_jax.errors import UserError
from maskedskip_jax.train import checkpointing
from maskedskip_jax.train import compile_cache
from maskedskip_jax.train import console
from maskedskip_jax.train import early_stopping
from maskedskip_jax.train import inputs as train_data
from maskedskip_jax.train import progress as train_progress
from maskedskip_jax.train import sharding
from maskedskip_jax.train import state as train_state


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


def _say(message: str) -> None:
  """User-facing progress lines (process 0), kept clear of the progress bar."""
  logging.info(message)
  if jax.process_index() == 0:
    console.write(message, sys.stderr)  # where the progress is


def _held_out(config, store, model):
  """The held-out videos' loss for early stopping, or None when it is off."""
  if config.train.early_stopping_patience == 0:
    return None
  from data_pipeline import clips  # pylint: disable=g-import-not-at-top

  windows = clips.train_windows(store.lengths, config.model.temporal, config.data.stride, names=store.video_names)
  losses = train_state.held_out_losses_fn(config, model)
  return early_stopping.HeldOut(store, windows, config.model.temporal, config.train.batch_size, losses)


def train(config, workdir: str) -> dict[str, Any]:
  """Train (or resume) in `workdir`; returns {'step', 'preempted', 'early_stopped', 'checkpoint_dir'}."""
  validation.validate(config)
  _check_writable(workdir)
  compile_cache.enable(config.train.compilation_cache_dir)
  c, t = config, config.train
  mesh = sharding.make_mesh()
  repl, data_sharding = sharding.replicated(mesh), sharding.batch_sharding(mesh)
  sharding.local_batch_size(t.batch_size, mesh)  # raises unless the batch splits evenly

  from data_pipeline import pipeline  # pylint: disable=g-import-not-at-top

  store, held_store = train_data.training_and_held_out(c, workdir)
  steps_per_epoch = pipeline.steps_per_epoch(store, t.batch_size, c.model.temporal, c.data.stride)
  total = t.num_steps if t.num_steps > 0 else t.epochs * steps_per_epoch
  model, tx = train_state.build_model(c), train_state.build_optimizer(c, total, steps_per_epoch)
  held_out = _held_out(c, held_store, model)
  input_shape = train_state.clip_shape(c)

  mngr = checkpointing.manager(workdir, keep=t.keep_checkpoints, async_save=t.async_checkpoints)
  meta = {"config": config_lib.to_json(c)}
  latest = mngr.latest_step()
  record = early_stopping.Record()
  if latest is None:
    state = train_state.init_state(t.seed, model=model, tx=tx, input_shape=input_shape, placement=repl)
  else:
    saved_meta = checkpointing.read_meta(mngr, latest)
    train_state.check_same_experiment(saved_meta, c, mngr.directory)
    record = early_stopping.Record.from_meta(saved_meta)
    abstract = train_state.abstract_state(model=model, tx=tx, input_shape=input_shape, placement=repl)
    state, _ = checkpointing.restore(mngr, abstract, latest)
    _say(f"resumed from {mngr.directory}/{latest}")
  start = int(np.asarray(state["step"]))
  _say(
    f"training {total} steps ({steps_per_epoch} per epoch, batch {t.batch_size} over {mesh.devices.size} "
    f"device(s), {jax.process_count()} process(es)) in {os.path.abspath(workdir)}"
  )

  def step_fn(stage):
    return jax.jit(
      train_state.train_step_fn(c, model=model, tx=tx, stage=stage),
      donate_argnums=0,
      in_shardings=(repl, data_sharding),
      out_shardings=(repl, repl),
    )

  batches = pipeline.train_iterator(
    store,
    t.batch_size,
    c.model.temporal,
    c.data.stride,
    t.seed,
    start_step=start,
    process_index=jax.process_index(),
    process_count=jax.process_count(),
    backend=c.data.backend,
  )
  if t.paste_prob > 0:
    batches = train_data.with_pasted_anomalies(
      batches,
      start=start,
      seed=t.seed,
      p=t.paste_prob,
      source=t.paste_source,
      blend=t.paste_blend,
      cutouts=train_data.cutouts(c),
      row_offset=jax.process_index() * sharding.local_batch_size(t.batch_size, mesh),
    )
  batches = sharding.prefetch(batches, data_sharding, t.prefetch)

  progress = train_progress.Progress(
    c, workdir, start, total, train_state.learning_rate_schedule(c, total, steps_per_epoch)
  )
  progress.saved = latest
  best = None
  if held_out is not None:
    best = checkpointing.manager(early_stopping.best_workdir(workdir), keep=1, async_save=False)
  if record.stopped:
    _say(f"early stopping ended this run at step {start} (best held-out loss at step {record.best_step})")
  watch = checkpointing.PreemptionWatch()
  preempted, compiled, pending = False, {}, None
  try:
    for step in range(start, start if record.stopped else total):
      batch = next(batches)
      # One compiled step per stage (AED-MAE has two), each compiled when first reached.
      stage = train_state.stage_of(c, step, total)
      if stage not in compiled:
        begin = time.perf_counter()
        compiled[stage] = step_fn(stage).lower(state, batch).compile()
        _say(f"compiled the train step{f' of stage {stage}' if stage else ''} in {time.perf_counter() - begin:.1f} s")
        if len(compiled) == 1:
          progress.start_clock()
      state, metrics = compiled[stage](state, batch)
      done = step + 1
      # The previous step's metrics are read while this one runs, keeping the device busy.
      if pending is not None:
        progress.check(*pending)
      pending = (done, metrics)
      preempted = watch.reached(done)
      if held_out is not None and done % steps_per_epoch == 0:
        progress.check(*pending)  # a state whose step blew up is neither scored nor kept
        pending = None
        _epoch_end(held_out, record, state, done, t.early_stopping_patience, progress, best, meta)
      if done % t.checkpoint_every_steps == 0 or done == total or preempted or record.stopped:
        if pending is not None:
          progress.check(*pending)  # never save a state whose step blew up
        pending = None
        with checkpointing.disk_errors_as_user_errors(mngr.directory):
          if checkpointing.save(mngr, done, state, dict(meta, early_stopping=record.as_meta())):
            progress.saved = done
      if preempted:
        _say(f"SIGTERM: saved step {done}; run the same command again to resume")
        break
      if record.stopped:
        _say(
          f"early stopping at step {done}: no lower held-out loss for {record.epochs_since} epochs; the best "
          f"({record.best_loss:.6g} at step {record.best_step}) is in {best.directory}"
        )
        break
    if pending is not None:
      progress.check(*pending)
  finally:
    watch.close()
    progress.close()
    with checkpointing.disk_errors_as_user_errors(mngr.directory):
      mngr.wait_until_finished()  # an async write in flight is the last good checkpoint
      mngr.close()
    if best is not None:
      best.close()
  return {
    "step": progress.last_good,
    "preempted": preempted,
    "early_stopped": record.stopped,
    "checkpoint_dir": checkpointing.checkpoint_dir(workdir),
  }


def _epoch_end(held_out, record, state, done, patience, progress, best, meta) -> None:
  """Scores the held-out videos after the epoch that ended at step `done`, logs it, and keeps a new best state."""
  loss = held_out.loss(state)
  improved = record.update(done, loss, patience)
  progress.log.write(
    done,
    {
      "heldout_loss": loss,
      "best_heldout_loss": record.best_loss,
      "best_step": record.best_step,
      "epochs_without_improvement": record.epochs_since,
    },
  )
  if improved:
    with checkpointing.disk_errors_as_user_errors(best.directory):
      checkpointing.save(best, done, state, dict(meta, early_stopping=record.as_meta()))
