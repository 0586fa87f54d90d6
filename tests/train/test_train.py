"""train_step and the training loop on a tiny model (CPU, float32)."""

import errno
import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tiny_run

from maskedskip_jax.errors import UserError
from maskedskip_jax.nn import dtypes
from maskedskip_jax.nn import models
from maskedskip_jax.train import checkpointing
from maskedskip_jax.train import compile_cache
from maskedskip_jax.train import loop
from maskedskip_jax.train import metrics_log
from maskedskip_jax.train import state as train_state
from maskedskip_jax.train import step as step_lib

compile_cache.enable(tiny_run.JAX_CACHE)  # reruns skip the compiles


@functools.cache  # compile each (mode, lr) once for the whole module
def _setup(masked_kernels="train", lr=1e-2):
  model = models.build("maskedskip_unet", latent_dim=16, channels=1, temporal=3)
  from maskedskip_jax.train import optim  # pylint: disable=g-import-not-at-top

  tx = optim.make_optimizer(lr, masked_kernels=masked_kernels)
  state = train_state.init_state(0, model=model, tx=tx, input_shape=(1, 3, 32, 32, 1))
  step = jax.jit(functools.partial(step_lib.train_step, model=model, tx=tx))
  return state, step


def _smooth_batch(seed=0, batch=4):
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:32, 0:32] / 32.0
  base = 0.3 + 0.2 * xx + 0.1 * yy
  clips = np.repeat(base[None, None, :, :, None], batch, 0).repeat(3, 1)
  clips = clips + 0.05 * rng.standard_normal(clips.shape)
  return {"clips": jnp.asarray(np.clip(clips, 0, 1), jnp.float32)}


def test_a_few_steps_lower_the_loss():
  state, step = _setup()
  batch = _smooth_batch()
  losses = []
  for _ in range(8):
    state, m = step(state, batch)
    losses.append(float(m["loss"]))
  assert np.all(np.isfinite(losses))
  assert losses[-1] < 0.8 * losses[0], losses
  assert int(state["step"]) == 8


def test_train_step_is_a_pure_function_of_state_and_batch():
  state, step = _setup()
  batch = _smooth_batch()
  a, ma = step(state, batch)
  b, mb = step(state, batch)
  assert float(ma["loss"]) == float(mb["loss"])
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)
  assert not np.array_equal(a["rng"], state["rng"])  # the rng moves with the state


def test_frozen_mode_keeps_masked_kernels_but_trains_their_biases():
  state, step = _setup(masked_kernels="frozen")
  before = state["params"]
  for seed in range(3):
    state, _ = step(state, _smooth_batch(seed))
  labels = models.masked_kernel_labels(before)
  flat_before = jax.tree_util.tree_leaves_with_path(before)
  flat_after = dict(jax.tree_util.tree_leaves_with_path(state["params"]))
  flat_labels = dict(jax.tree_util.tree_leaves_with_path(labels))
  masked = [p for p, _ in flat_before if flat_labels[p] == "masked"]
  assert len(masked) == 4  # one per skip
  for path, value in flat_before:
    moved = not np.array_equal(value, flat_after[path])
    if flat_labels[path] == "masked":
      assert not moved, jax.tree_util.keystr(path)
    elif "mconv" in jax.tree_util.keystr(path):  # the masked convs' biases still learn
      assert moved, jax.tree_util.keystr(path)


def test_trained_mode_moves_masked_kernels():
  state, step = _setup()
  before = state["params"]
  state, _ = step(state, _smooth_batch())
  labels = models.masked_kernel_labels(before)
  moved = jax.tree.map(
    lambda a, b, label: label == "masked" and not np.array_equal(a, b), before, state["params"], labels
  )
  assert sum(jax.tree.leaves(moved)) == 4


def test_compute_dtype_auto_is_float32_on_cpu_and_bf16_elsewhere():
  assert dtypes.compute_dtype("auto", "cpu") == jnp.float32
  assert dtypes.compute_dtype("auto", "gpu") == jnp.bfloat16
  assert dtypes.compute_dtype("auto", "tpu") == jnp.bfloat16
  assert dtypes.compute_dtype("float32", "gpu") == jnp.float32


@pytest.fixture(scope="module")
def dataset(tiny_dataset):
  return tiny_dataset


def test_loop_writes_metrics_and_checkpoints_and_stops_when_done(dataset, tmp_path):
  config = tiny_run.config(dataset, train__num_steps=5, train__checkpoint_every_steps=2)
  result = loop.train(config, str(tmp_path / "run"))
  assert result == {
    "step": 5,
    "preempted": False,
    "early_stopped": False,
    "checkpoint_dir": str(tmp_path / "run" / "checkpoints"),
  }
  assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == ["2", "4", "5"]
  records = metrics_log.read(str(tmp_path / "run" / "metrics.jsonl"))
  assert [r["step"] for r in records] == [1, 2, 3, 4, 5]
  assert all(np.isfinite(r["loss"]) and r["clips_per_s"] > 0 for r in records)
  assert os.listdir(tmp_path / "run" / "tensorboard")
  # Running again finds the work done: no step is repeated, nothing changes.
  model, variables, step = train_state.restore_variables(config, str(tmp_path / "run"))
  assert step == 5 and loop.train(config, str(tmp_path / "run"))["step"] == 5
  assert len(metrics_log.read(str(tmp_path / "run" / "metrics.jsonl"))) == 5
  # A different model in the same workdir is refused with the key named.
  config.model.latent_dim = 24
  with pytest.raises(UserError, match="model.latent_dim"):
    loop.train(config, str(tmp_path / "run"))
  del model, variables


def test_nan_loss_stops_with_last_good_checkpoint_intact(dataset, tmp_path, monkeypatch):
  original = step_lib.train_step

  def blows_up_at_step_5(state, batch, **kw):
    new, m = original(state, batch, **kw)
    boom = state["step"] >= 4
    poison = lambda x: jnp.where(boom, jnp.nan, x)  # pylint: disable=unnecessary-lambda-assignment
    return dict(new, params=jax.tree.map(poison, new["params"])), dict(m, loss=poison(m["loss"]))

  monkeypatch.setattr(step_lib, "train_step", blows_up_at_step_5)
  workdir = str(tmp_path / "run")
  config = tiny_run.config(dataset, train__num_steps=9, train__checkpoint_every_steps=2)
  with pytest.raises(UserError, match=r"diverged at step 5: loss nan.*checkpoint step 4 is intact"):
    loop.train(config, workdir)
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "4"]
  _, variables, step = train_state.restore_variables(config, workdir)
  assert step == 4
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(variables))
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    assert [json.loads(line)["step"] for line in f] == [1, 2, 3, 4]


def test_checkpoint_manager_refuses_a_missing_workdir(tmp_path):
  with pytest.raises(UserError, match="no checkpoints"):
    checkpointing.manager(str(tmp_path / "nothing"), read_only=True)


def test_unwritable_workdir_fails_first(dataset, tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("not a folder")
  with pytest.raises(UserError, match=r"--workdir .*a_file/run: not writable"):
    loop.train(tiny_run.config(dataset), str(blocker / "run"))


def test_disk_full_while_checkpointing_is_a_user_error(dataset, tmp_path, monkeypatch):
  def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

  monkeypatch.setattr(checkpointing, "save", no_space)
  with pytest.raises(UserError, match="could not write a checkpoint .No space left on device"):
    loop.train(tiny_run.config(dataset, train__num_steps=3, train__checkpoint_every_steps=2), str(tmp_path / "run"))
