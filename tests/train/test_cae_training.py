"""Seed 003's CAE training recipe: the hybrid loss against hand-computed values, the x0.95-per-10-epochs schedule,
early stopping on held-out training videos (resumable, best state kept and restored), the augmentation, and the
config rules and file (configs/cae_ped2.py)."""

import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tiny_run

from maskedskip_jax import config as config_lib
from maskedskip_jax import validation
from maskedskip_jax.errors import UserError
from maskedskip_jax.train import augment
from maskedskip_jax.train import cae_step
from maskedskip_jax.train import checkpointing
from maskedskip_jax.train import early_stopping
from maskedskip_jax.train import loop
from maskedskip_jax.train import metrics_log
from maskedskip_jax.train import sharding
from maskedskip_jax.train import state as train_state

EPS = 1e-6  # motion.motion_weights' epsilon


def _frames(*rows):
  """A (1, 2, 2, 1) frame from its two rows."""
  return jnp.asarray(rows, jnp.float32).reshape(1, 2, 2, 1)


def test_hybrid_loss_matches_hand_computed_values():
  prev, centre, nxt = _frames([0, 0], [0, 0]), _frames([1, 0], [0, 0]), _frames([1, 0], [0, 0])
  clips = jnp.stack([prev, centre, nxt], axis=1)
  recon = _frames([0.5, 0], [0, 0.5])
  # Motion map: mean of |centre - prev| and |next - centre| = [[0.5, 0], [0, 0]], mean 0.125; weights (m + eps) /
  # (0.125 + eps). Squared errors [[0.25, 0], [0, 0.25]]: L_rec = 0.125, L_motion = (w00 * 0.25 + w11 * 0.25) / 4.
  w00, w11 = (0.5 + EPS) / (0.125 + EPS), EPS / (0.125 + EPS)
  l_rec, l_motion = 0.125, (w00 + w11) * 0.25 / 4
  out = cae_step.clip_losses(centre, recon, clips, cae_step.HybridOptions(alpha=0.3, beta=2.0))
  np.testing.assert_allclose(out["reconstruction"], [l_rec], rtol=1e-6)
  np.testing.assert_allclose(out["motion"], [l_motion], rtol=1e-6)
  np.testing.assert_allclose(out["loss"], [0.3 * l_rec + 2.0 * l_motion], rtol=1e-6)
  assert l_motion == pytest.approx(0.25, rel=1e-4)  # the moving pixel's error counts four times
  static = jnp.stack([centre] * 3, axis=1)  # no motion: uniform weights, L_motion = L_rec
  np.testing.assert_allclose(cae_step.clip_losses(centre, recon, static, cae_step.HybridOptions())["motion"], [l_rec])


def _config(root, **kw):
  settings = dict(model__variant="cae", train__num_steps=0, train__learning_rate=1e-30)
  return tiny_run.config(root, **{**settings, **kw})


def test_step_decay_multiplies_by_0_95_every_10_epochs(tiny_dataset):
  config = _config(tiny_dataset, train__schedule="step_decay", train__learning_rate=1e-3)
  lr = train_state.learning_rate_schedule(config, total_steps=1000, steps_per_epoch=7)
  for step, want in ((0, 1e-3), (69, 1e-3), (70, 0.95e-3), (139, 0.95e-3), (140, 0.95**2 * 1e-3)):
    assert float(lr(step)) == pytest.approx(want, rel=1e-6), step


def test_early_stopping_record():
  record = early_stopping.Record()
  assert record.as_meta()["best_loss"] is None  # no infinity in JSON
  steps = [(10, 1.0), (20, 0.5), (30, 0.5), (40, 0.4), (50, 0.6), (60, 0.45)]
  improved = [record.update(step, loss, patience=2) for step, loss in steps]
  assert improved == [True, True, False, True, False, False]
  assert (record.best_loss, record.best_step, record.epochs_since, record.stopped) == (0.4, 40, 2, True)
  assert early_stopping.Record.from_meta({"early_stopping": record.as_meta()}) == record
  assert early_stopping.Record.from_meta({}) == early_stopping.Record()


def _heldout(workdir):
  return [r for r in metrics_log.read(os.path.join(workdir, metrics_log.METRICS_FILE)) if "heldout_loss" in r]


def _state(config, workdir, step):
  """The whole train state (Adam's moments, whose values depend on every augmented batch, included) at `step`."""
  abstract = train_state.abstract_state(
    model=train_state.build_model(config),
    tx=train_state.build_optimizer(config, 1),
    input_shape=train_state.clip_shape(config),
    placement=sharding.replicated(sharding.make_mesh()),
  )
  mngr = checkpointing.manager(workdir, read_only=True)
  try:
    return jax.tree.map(np.asarray, checkpointing.restore(mngr, abstract, step)[0])
  finally:
    mngr.close()


def _params(config, workdir):
  _, variables, step = train_state.restore_variables(config, workdir)
  return step, jax.tree.map(np.asarray, variables["params"])


def test_early_stopping_in_the_loop_resumes_exactly_and_keeps_the_best(tiny_dataset, tmp_path):
  """4 steps per epoch; at a learning rate of 1e-30 nothing moves, so epoch 1 is the best and, with patience 2,
  the run stops after epoch 3. Stopping after epoch 2 and resuming gives the same run; a stopped run stays
  stopped; evaluation restores the best state. Augmentation and step decay are on (their draws resume too)."""
  kw = dict(train__early_stopping_patience=2, train__augment=True, train__schedule="step_decay")
  kw.update(train__decay_every_epochs=1, train__decay_factor=0.5, train__checkpoint_every_steps=3)
  config = _config(tiny_dataset, train__epochs=5, **kw)
  whole = str(tmp_path / "whole")
  result = loop.train(config, whole)
  assert result["early_stopped"] and result["step"] == 12
  records = _heldout(whole)
  assert [r["step"] for r in records] == [4, 8, 12]
  assert [r["epochs_without_improvement"] for r in records] == [0, 1, 2]
  assert all(r["best_step"] == 4 for r in records)
  lines = metrics_log.read(os.path.join(whole, metrics_log.METRICS_FILE))
  logged = {r["step"]: r["learning_rate"] for r in lines if "learning_rate" in r}
  assert logged[5] == pytest.approx(logged[4] / 2) and logged[9] == pytest.approx(logged[4] / 4)
  assert os.listdir(os.path.join(early_stopping.best_workdir(whole), "checkpoints")) == ["4"]
  assert _params(config, whole)[0] == 4  # evaluation and export get the best state

  split = str(tmp_path / "split")
  assert not loop.train(_config(tiny_dataset, train__epochs=2, **kw), split)["early_stopped"]
  again = loop.train(config, split)
  assert again["early_stopped"] and again["step"] == 12
  assert _heldout(split) == records
  jax.tree.map(np.testing.assert_array_equal, _state(config, split, 12), _state(config, whole, 12))
  step, params = _params(config, split)
  assert step == 4
  jax.tree.map(np.testing.assert_array_equal, params, _params(config, whole)[1])
  assert loop.train(config, split)["step"] == 12  # stopped: nothing more to train


def _batch(b=3, t=3, size=16, seed=0):
  rng = np.random.default_rng(seed)
  clips = jnp.asarray(rng.random((b, t, size, size, 1)), jnp.float32)
  return {"clips": clips, "target": clips[:, t // 2], "anomaly_map": clips[:, t // 2, ..., 0]}


def test_augmentation_is_one_transform_per_clip_and_seeded():
  batch = _batch()
  opts = augment.Options(crop=0.7, degrees=15.0)
  a = augment.augment_batch(jax.random.key(0), batch, opts)
  b = augment.augment_batch(jax.random.key(0), batch, opts)
  c = augment.augment_batch(jax.random.key(1), batch, opts)
  jax.tree.map(np.testing.assert_array_equal, a, b)
  assert not np.allclose(a["clips"], c["clips"])
  # The clean target and the pasted map move with the clip's centre frame.
  np.testing.assert_allclose(a["target"], a["clips"][:, 1], atol=1e-6)
  np.testing.assert_allclose(a["anomaly_map"], a["clips"][:, 1, ..., 0], atol=1e-6)
  same = dict(batch, clips=jnp.repeat(batch["clips"][:, :1], 3, axis=1))
  out = augment.augment_batch(jax.random.key(2), same, opts)["clips"]
  np.testing.assert_allclose(out[:, 0], out[:, 2], atol=1e-6)  # every frame of a clip alike
  assert float(out.min()) >= 0 and float(out.max()) <= 1  # bilinear, edges replicated: no new values


def test_no_crop_no_rotation_leaves_each_clip_or_its_mirror():
  batch = _batch(b=8, seed=1)
  out = augment.augment_batch(jax.random.key(3), batch, augment.Options(crop=1.0, degrees=0.0))["clips"]
  flips = []
  for x, y in zip(np.asarray(batch["clips"]), np.asarray(out)):
    flips.append(not np.allclose(x, y, atol=1e-5))
    np.testing.assert_allclose(y, x[:, :, ::-1] if flips[-1] else x, atol=1e-5)
  assert any(flips) and not all(flips)


@pytest.mark.parametrize(
  "overrides, needle",
  [
    (dict(model__variant="maskedskip_unet"), "multiples of 16"),
    (dict(model__temporal=1), "model.temporal"),
    (dict(model__mask_head=True, train__paste_prob=0.5), "model.mask_head"),
    (dict(train__motion_weighting="pixel"), "train.motion_weighting"),
    (dict(train__hybrid_alpha=0.0, train__hybrid_beta=0.0), "train.hybrid_alpha"),
    (dict(train__early_stopping_patience=3, data__holdout_share=0.0), "train.early_stopping_patience"),
    (dict(data__image_size=(196, 196)), "data.image_size"),
  ],
)
def test_config_mistakes_are_one_line_errors(overrides, needle):
  settings = {"model.variant": "cae", "model.latent_dim": 128, "data.image_size": (200, 200)}
  config = config_lib.with_values(config_lib.default_config(), settings)
  validation.validate(config)
  with pytest.raises(UserError, match=needle):
    validation.validate(config_lib.with_values(config, {k.replace("__", "."): v for k, v in overrides.items()}))


def test_aed_mae_refuses_augmentation():
  settings = {"model.variant": "aed_mae", "model.temporal": 7, "train.augment": True}
  with pytest.raises(UserError, match="train.augment"):
    validation.validate(config_lib.with_values(config_lib.default_config(), settings))


def test_the_config_file_holds_the_papers_settings():
  spec = importlib.util.spec_from_file_location("cae_ped2", os.path.join(tiny_run.REPO, "configs", "cae_ped2.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  validation.validate(config)
  model = train_state.build_model(config)
  shapes = train_state.variable_shapes(model, train_state.clip_shape(config))
  assert sum(int(np.prod(p.shape)) for p in jax.tree.leaves(shapes["params"])) == 332_801
  t = config.train
  assert (t.learning_rate, t.schedule, t.decay_factor, t.decay_every_epochs) == (1e-3, "step_decay", 0.95, 10)
  assert (t.early_stopping_patience, t.augment, config.data.image_size) == (10, True, (200, 200))
  assert "python -m maskedskip_jax.main --config=configs/cae_ped2.py" in module.__doc__
