"""Issue 9's parts wired into the model, the train step, the training loop and evaluation."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
from model_helpers import jit_apply
from model_helpers import make_store
from model_helpers import random_variables
import numpy as np
import pytest
import tiny_run

from data_pipeline import anomaly_paste
from maskedskip_jax import config as config_lib
from maskedskip_jax import validation
from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import evaluate
from maskedskip_jax.nn import initialization
from maskedskip_jax.nn import losses
from maskedskip_jax.nn import models
from maskedskip_jax.nn import motion
from maskedskip_jax.nn import ssmctb
from maskedskip_jax.train import compile_cache
from maskedskip_jax.train import inputs as train_data
from maskedskip_jax.train import optim
from maskedskip_jax.train import state as train_state
from maskedskip_jax.train import step as step_lib

compile_cache.enable(tiny_run.JAX_CACHE)


def _clips(seed=0, batch=2, t=3, size=32):
  rng = np.random.default_rng(seed)
  clips = rng.random((batch, t, size, size, 1), dtype=np.float32) * 0.2 + 0.4
  for k in range(t):  # a bright square moving right: motion where it is
    clips[:, k, 8:16, 4 + 3 * k : 12 + 3 * k] = 0.95
  return clips


# Each placement compiles its own train step: the default run keeps the paper's, -m slow runs them all.
@pytest.mark.parametrize(
  "placement",
  [
    pytest.param("latent_skip", marks=pytest.mark.slow),
    pytest.param("all_skips", marks=pytest.mark.slow),
    pytest.param("decoder", marks=pytest.mark.slow),
    "penultimate",
  ],
)
def test_ssmctb_blocks_sit_where_configured_and_their_loss_joins_the_step(placement):
  model = models.build("maskedskip_unet", latent_dim=16, channels=1, ssmctb={"placement": placement})
  names = {
    "latent_skip": {"ssmctb_skip4"},
    "decoder": {"ssmctb_decoder"},
    "penultimate": {"ssmctb_penultimate"},
    "all_skips": {f"ssmctb_skip{i}" for i in range(1, 5)},
  }[placement]
  tx = optim.make_optimizer(1e-3)
  state = train_state.init_state(0, model=model, tx=tx, input_shape=(1, 3, 32, 32, 1))
  assert {k for k in state["params"] if k.startswith("ssmctb")} == names
  # The paper's placement is instead of the last decoder conv layer: that layer's kernels are gone.
  assert ("convs_0" in state["params"]["decoder_4"]) == (placement != "penultimate")
  batch = {"clips": jnp.asarray(_clips())}
  recon, upd = jit_apply(
    model,
    {"params": state["params"], "batch_stats": state["batch_stats"]},
    batch["clips"],
    train=True,
    mutable=["batch_stats", ssmctb.LOSS_COLLECTION],
  )
  ssl = float(ssmctb.total_ssl_loss(upd))
  want = float(losses.norm_loss(batch["clips"][:, 1], recon)) + ssl
  before = jax.tree.map(np.asarray, state["params"])
  new, metrics = jax.jit(functools.partial(step_lib.train_step, model=model, tx=tx))(state, batch)
  assert ssl > 0
  np.testing.assert_allclose(float(metrics["loss"]), want, rtol=1e-5)
  for name in names:  # the blocks learn
    moved = jax.tree.map(lambda a, b: np.abs(np.asarray(a) - b).max(), new["params"][name], before[name])
    assert max(jax.tree.leaves(moved)) > 0, name


def test_frozen_mode_freezes_the_network_masks_not_the_ssmctb_kernel():
  model = models.build("maskedskip_unet", latent_dim=16, channels=1, ssmctb={"placement": "latent_skip"})
  params = initialization.init_variables(model, 0, (1, 3, 32, 32, 1))["params"]
  labels = models.masked_kernel_labels(params)
  assert labels["mconv4"]["masked_kernel"] == "masked"
  assert labels["ssmctb_skip4"]["conv"]["masked_kernel"] == "free"


def test_ssmctb_three_dimensional_block_needs_t_frames():
  model = models.build("maskedskip_unet", latent_dim=16, channels=1, ssmctb={"placement": "all_skips", "dims": 3})
  y = jit_apply(model, initialization.init_variables(model, 0, (1, 3, 32, 32, 1)), jnp.asarray(_clips()))
  assert y.shape == (2, 32, 32, 1)
  with pytest.raises(UserError, match="model.ssmctb"):
    models.build("unet", latent_dim=16, channels=1, ssmctb={"placement": "all_skips", "dims": 3})
  with pytest.raises(UserError, match=r"model.ssmctb: unknown keys \['lambda'\]"):
    models.build("maskedskip_unet", latent_dim=16, channels=1, ssmctb={"lambda": 0.1})


def test_config_names_the_shortest_clip_the_paper_s_3d_block_needs():
  config = tiny_run.config("unused")
  paper_3d = {"model.ssmctb.placement": "all_skips", "model.ssmctb.dims": 3}
  assert config.model.ssmctb.depth == "paper" and config.model.temporal == 3  # the config default is the paper's
  with pytest.raises(UserError, match=r"config key model.temporal: .* at least 2k'\+2d\+1 = 5 frames, got 3"):
    validation.validate(config_lib.with_values(config, paper_3d))
  with pytest.raises(UserError, match=r"at least 2k'\+2d\+1 = 7 frames, got 5"):
    validation.validate(config_lib.with_values(config, {**paper_3d, "model.temporal": 5, "model.ssmctb.distance": 2}))
  validation.validate(config_lib.with_values(config, {**paper_3d, "model.temporal": 5}))
  validation.validate(config_lib.with_values(config, {**paper_3d, "model.ssmctb.depth": "clip"}))  # T=3: distance 0
  with pytest.raises(UserError, match="config key model.latent_dim: .*'penultimate'.* 2 channels"):
    validation.validate(
      config_lib.with_values(config, {"model.ssmctb.placement": "penultimate", "model.latent_dim": 8})
    )
  model = train_state.build_model(config_lib.with_values(config, {**paper_3d, "model.temporal": 5}))
  assert model.ssmctb.kernel_depth(5) == 5 and model.ssmctb.depth == "paper"


@pytest.mark.parametrize("weighting", ["pixel", "patch"])
def test_motion_weighted_step_uses_the_motion_weights(weighting):
  model = models.build("maskedskip_unet", latent_dim=16, channels=1)
  tx = optim.make_optimizer(1e-3)
  state = train_state.init_state(0, model=model, tx=tx, input_shape=(1, 3, 32, 32, 1))
  clips = jnp.asarray(_clips())
  options = step_lib.LossOptions(motion_weighting=weighting, motion_median=3, motion_patch=8, motion_uniform_mix=0.1)
  recon, _ = jit_apply(
    model, {"params": state["params"], "batch_stats": state["batch_stats"]}, clips, train=True, mutable=["batch_stats"]
  )
  weights = motion.motion_weights(clips, median=3, patch=8 if weighting == "patch" else None, uniform_mix=0.1)
  want = float(motion.motion_weighted_norm_loss(clips[:, 1], recon, weights))
  plain = float(losses.norm_loss(clips[:, 1], recon))
  _, metrics = jax.jit(functools.partial(step_lib.train_step, model=model, tx=tx, loss=options))(
    state, {"clips": clips}
  )
  np.testing.assert_allclose(float(metrics["loss"]), want, rtol=1e-5)
  assert abs(want - plain) > 1e-4 * plain  # the weighting changed the loss


def test_step_options_come_from_the_config():
  config = config_lib.default_config()
  config.train.motion_weighting, config.train.motion_median = "patch", 5
  options = step_lib.LossOptions.from_config(config)
  assert options.motion_weighting == "patch" and options.motion_median == 5
  with pytest.raises(dataclasses.FrozenInstanceError):
    options.motion_median = 3  # type: ignore[misc]


def test_pasted_batches_change_only_masked_pixels_and_keep_the_clean_target():
  clips = _clips(batch=6)
  batches = [{"clips": clips}, {"clips": clips}]
  out = list(train_data.with_pasted_anomalies(iter(batches), start=10, seed=3, p=1.0, source="sprites", row_offset=0))
  for step, batch in enumerate(out, start=10):
    _, _, masks = anomaly_paste.paste_anomalies(clips, seed=3, step=step, p=1.0, source="sprites")
    changed = np.any(batch["clips"] != clips, axis=-1)
    assert changed.any() and not (changed & (masks == 0)).any()
    np.testing.assert_array_equal(batch["target"], clips[:, 1])
    np.testing.assert_array_equal(batch["anomaly_map"], masks[:, 1])
  assert not np.array_equal(out[0]["clips"], out[1]["clips"])  # a new draw per step


def test_pasted_step_reconstructs_the_clean_centre():
  model = models.build("maskedskip_unet", latent_dim=16, channels=1)
  tx = optim.make_optimizer(1e-3)
  state = train_state.init_state(0, model=model, tx=tx, input_shape=(1, 3, 32, 32, 1))
  clips = _clips()
  pasted = next(
    train_data.with_pasted_anomalies(iter([{"clips": clips}]), start=0, seed=0, p=1.0, source="sprites", row_offset=0)
  )
  recon, _ = jit_apply(
    model,
    {"params": state["params"], "batch_stats": state["batch_stats"]},
    jnp.asarray(pasted["clips"]),
    train=True,
    mutable=["batch_stats"],
  )
  want = float(losses.norm_loss(jnp.asarray(clips[:, 1]), recon))
  batch = {k: jnp.asarray(v) for k, v in pasted.items()}
  _, metrics = jax.jit(functools.partial(step_lib.train_step, model=model, tx=tx))(state, batch)
  np.testing.assert_allclose(float(metrics["loss"]), want, rtol=1e-5)


def test_video_motion_scores_align_with_the_centre_frame():
  frames = np.full((7, 32, 32, 1), 100, np.uint8)
  frames[3, 4:20, 4:20] = 250  # a flash in frame 3 only: frames 2, 3 and 4 see it
  got = motion.video_motion_scores(frames, patch=16, batch_size=4)
  assert got.shape == (7,)
  assert got[3] > got[2] > 0 and got[2] == pytest.approx(got[4]) and got[0] == got[1] == got[5] == got[6] == 0
  assert got[3] == pytest.approx(2 * got[2])  # frame 3 differs from both neighbours


def test_hybrid_frame_score_is_written_to_the_report(tmp_path):
  model = models.build("maskedskip_unet", latent_dim=8, channels=1)
  variables = random_variables(model)
  store, _, _ = make_store()
  kw = dict(temporal=3, batch_size=5, pixel_metrics=False, progress=False)
  plain = evaluate.evaluate_store(model, variables, store, out_dir=str(tmp_path / "plain"), **kw)
  hybrid = evaluate.evaluate_store(
    model, variables, store, out_dir=str(tmp_path / "hybrid"), hybrid_alpha=0.5, hybrid_beta=2.0, **kw
  )
  assert plain["frame_score"]["formula"] == "reconstruction"
  assert hybrid["frame_score"]["hybrid_beta"] == 2.0 and hybrid["frame_score"]["hybrid_alpha"] == 0.5
  import csv  # pylint: disable=g-import-not-at-top

  rows = {name: list(csv.DictReader(open(tmp_path / name / "scores.csv"))) for name in ("plain", "hybrid")}
  offset = 0
  for v in range(store.num_videos):
    n = store.num_frames(v)
    recon = np.array([float(r["score"]) for r in rows["plain"][offset : offset + n]])
    got = np.array([float(r["score"]) for r in rows["hybrid"][offset : offset + n]])
    want = 0.5 * recon + 2.0 * motion.video_motion_scores(store.video_frames(v))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    offset += n
