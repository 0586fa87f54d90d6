"""The optional mask head of synthetic-anomaly training (issue 9): model, loss, learning, config, bundle, a run."""

import functools
import hashlib
import json
import os

import jax
import jax.numpy as jnp
from model_helpers import REFERENCE_COUNTS
from model_helpers import STORE_SIZE as SIZE
from model_helpers import STREAM_LENGTHS as LENGTHS
from model_helpers import centre_clips
from model_helpers import init_shapes
from model_helpers import jit_apply
from model_helpers import random_variables
import numpy as np
import pytest
import tiny_run

from data_pipeline import anomaly_paste
from maskedskip_jax import config as config_lib
from maskedskip_jax import validation
from maskedskip_jax.deploy import bundle
from maskedskip_jax.deploy import export
from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import evaluate
from maskedskip_jax.eval import hybrid
from maskedskip_jax.eval import streaming
from maskedskip_jax.nn import inference
from maskedskip_jax.nn import initialization
from maskedskip_jax.nn import models
from maskedskip_jax.nn import scoring
from maskedskip_jax.train import compile_cache
from maskedskip_jax.train import loop
from maskedskip_jax.train import optim
from maskedskip_jax.train import state as train_state
from maskedskip_jax.train import step as step_lib

compile_cache.enable(tiny_run.JAX_CACHE)

B, T, H, W = 4, 3, 32, 32


def _clips(seed, batch=B, channels=1):
  return np.random.default_rng(seed).uniform(0.4, 0.6, (batch, T, H, W, channels)).astype(np.float32)


def _pasted_batch(step):
  """Clips with a moving sprite pasted into each, the clean centre frame and the sprite's centre-frame map."""
  clips, target, masks = anomaly_paste.paste_anomalies(_clips(step), seed=0, step=step, p=1.0, source="sprites")
  return {"clips": jnp.asarray(clips), "target": jnp.asarray(target), "anomaly_map": jnp.asarray(masks[:, 1])}


@functools.cache  # one compile of the step for the module: the weight is an argument
def _setup():
  model = models.build("maskedskip_unet", latent_dim=16, channels=1, mask_head=True)
  tx = optim.make_optimizer(1e-2)
  state = train_state.init_state(0, model=model, tx=tx, input_shape=(1, T, H, W, 1))
  step = jax.jit(
    lambda s, b, w: step_lib.train_step(s, b, model=model, tx=tx, loss=step_lib.LossOptions(mask_loss_weight=w))
  )
  return model, state, step


def _bce(t, p):
  p = np.clip(p.astype(np.float64), 1e-6, 1 - 1e-6)
  return float(-np.mean(t * np.log(p) + (1 - t) * np.log(1 - p)))


def test_output_shapes_and_the_extra_decoder_channel():
  head = models.build("maskedskip_unet", latent_dim=8, channels=1, mask_head=True)
  variables = initialization.init_variables(head, 0, (1, T, H, W, 1))
  assert variables["params"]["decoder_4"]["conv_last"]["kernel"].shape == (1, 1, 6, 2)  # (3 * (C+1), C+1)
  x = _clips(0, batch=2)
  assert jit_apply(head, variables, x).shape == (2, H, W, 1)
  recon, mask = jit_apply(head, variables, x, return_mask=True)
  assert recon.shape == (2, H, W, 1) and mask.shape == (2, H, W) and mask.dtype == jnp.float32
  assert 0 <= float(mask.min()) and float(mask.max()) <= 1
  plain = models.build("maskedskip_unet", latent_dim=8, channels=1)
  with pytest.raises(UserError, match="model.mask_head"):
    jit_apply(plain, initialization.init_variables(plain, 0, (1, T, H, W, 1)), x, return_mask=True)


def test_only_the_last_decoder_block_grows_and_the_default_count_is_the_reference():
  plain = init_shapes(models.build("maskedskip_unet", latent_dim=512, channels=3))["params"]
  head = init_shapes(models.build("maskedskip_unet", latent_dim=512, channels=3, mask_head=True))["params"]
  assert models.count_params(plain) == REFERENCE_COUNTS["maskedskip_unet"]
  assert {k: v for k, v in plain.items() if k != "decoder_4"} == {k: v for k, v in head.items() if k != "decoder_4"}
  assert head["decoder_4"]["conv_last"]["kernel"].shape == (1, 1, 12, 4)
  assert models.count_params(head) > models.count_params(plain)


def _decoder_4(module, _):
  return module.name == "decoder_4"


def test_reconstruction_and_mask_are_one_sigmoid_output():
  model = models.build("maskedskip_unet", latent_dim=8, channels=3, mask_head=True)
  variables = random_variables(model)
  x = _clips(1, batch=2, channels=3)
  recon, state = jit_apply(model, variables, x, capture_intermediates=_decoder_4, mutable=["intermediates"])
  logits = state["intermediates"]["decoder_4"]["__call__"][0]
  assert logits.shape == (2, H, W, 4)
  out = jax.nn.sigmoid(logits)
  np.testing.assert_array_equal(recon, out[..., :3])
  both = jit_apply(model, variables, x, return_mask=True)
  np.testing.assert_array_equal(both[0], recon)
  np.testing.assert_array_equal(both[1], out[..., 3])


def test_loss_adds_the_weighted_mask_bce():
  model, state, step = _setup()
  batch = _pasted_batch(0)
  anomaly_map = np.asarray(batch["anomaly_map"])
  assert 0 < anomaly_map.mean() < 0.5 and set(np.unique(anomaly_map)) == {0.0, 1.0}
  (recon, mask), _ = jit_apply(
    model,
    {"params": state["params"], "batch_stats": state["batch_stats"]},
    batch["clips"],
    train=True,
    return_mask=True,
    mutable=["batch_stats"],
  )
  diff = np.asarray(batch["target"], np.float64) - np.asarray(recon, np.float64)
  norm = float(np.mean(np.sqrt(np.sum(diff * diff, axis=-1) + 1e-12)))
  bce = _bce(anomaly_map, np.asarray(mask))
  _, metrics = step(state, batch, 0.5)
  np.testing.assert_allclose(float(metrics["mask_loss"]), bce, rtol=1e-5)
  np.testing.assert_allclose(float(metrics["loss"]), norm + 0.5 * bce, rtol=1e-5)
  _, unweighted = step(state, batch, 0.0)
  np.testing.assert_allclose(float(unweighted["loss"]), norm, rtol=1e-5)


def test_training_with_the_head_learns_where_the_pasted_object_is():
  model, state, step = _setup()
  held_out = _pasted_batch(10_000)
  before = float(step(state, held_out, 1.0)[1]["mask_loss"])
  # 100 steps, not 15: a few steps only learn the pasted share (the bias), not where the object is.
  for k in range(100):
    state, _ = step(state, _pasted_batch(k), 1.0)
  after = float(step(state, held_out, 1.0)[1]["mask_loss"])
  (_, mask), _ = jit_apply(
    model,
    {"params": state["params"], "batch_stats": state["batch_stats"]},
    held_out["clips"],
    train=True,
    return_mask=True,
    mutable=["batch_stats"],
  )
  mask, anomaly_map = np.asarray(mask), np.asarray(held_out["anomaly_map"])
  share = anomaly_map.mean()
  constant = _bce(anomaly_map, np.full_like(mask, share))  # the best map that ignores the image
  assert after < 0.25 * before and after < 0.8 * constant, (before, after, constant)
  assert mask[anomaly_map == 1].mean() > 3 * mask[anomaly_map == 0].mean()


def test_config_keys_and_the_head_needs_pasting():
  config = config_lib.default_config()
  assert config.model.mask_head is False and config.train.mask_loss_weight == 1.0
  with pytest.raises(UserError, match=r"model\.mask_head.*train\.paste_prob") as e:
    validation.validate(config_lib.with_values(config, {"model.mask_head": True}))
  assert "\n" not in str(e.value)
  good = config_lib.with_values(
    config, {"model.mask_head": True, "train.paste_prob": 0.25, "train.mask_loss_weight": 2}
  )
  validation.validate(good)
  assert train_state.build_model(good).mask_head and step_lib.LossOptions.from_config(good).mask_loss_weight == 2.0
  assert "model.mask_head" in train_state.MUST_MATCH
  with pytest.raises(UserError, match="train.mask_loss_weight: expected a number >= 0"):
    validation.validate(config_lib.with_values(good, {"train.mask_loss_weight": -1.0}))
  validation.validate(config_lib.with_values(good, {"eval.mask_weight": 0.5, "eval.hybrid_alpha": 0.0}))
  with pytest.raises(UserError, match=r"eval\.mask_weight: .*model\.mask_head=True"):
    validation.validate(config_lib.with_values(config, {"eval.mask_weight": 1.0}))
  with pytest.raises(UserError, match="every frame-score weight"):
    validation.validate(config_lib.with_values(config, {"eval.hybrid_alpha": 0.0}))


def test_streaming_scores_the_heads_map_like_the_error_map():
  model = models.build("maskedskip_unet", latent_dim=8, channels=1, mask_head=True)
  variables = random_variables(model, seed=4)
  rng = np.random.default_rng(5)
  videos = [rng.integers(0, 256, (n, *SIZE, 1), dtype=np.uint8) for n in LENGTHS]
  out = list(streaming.StreamingScorer(model, variables, SIZE, batch_size=3).stream(videos))
  _, mask = jax.jit(lambda v, x: model.apply(v, x, return_mask=True))(variables, centre_clips(videos, T))
  np.testing.assert_allclose([o.mask_score for o in out], scoring.frame_scores(mask), atol=1e-5, rtol=0)
  plain = models.build("maskedskip_unet", latent_dim=8, channels=1)
  scored = next(streaming.StreamingScorer(plain, random_variables(plain), SIZE, batch_size=3).stream(videos))
  assert scored.mask_score is None


def test_frame_score_formula_adds_the_weighted_mask_score():
  recon, mask = [np.array([1.0, 2.0])], [np.array([10.0, 30.0])]
  spec = hybrid.Spec(alpha=2.0, mask_weight=0.5)
  np.testing.assert_array_equal(hybrid.combine(recon, None, mask, spec)[0], [7.0, 19.0])
  assert spec.formula() == "hybrid_alpha * reconstruction + mask_weight * mask head"
  spec = hybrid.Spec(alpha=2.0)
  np.testing.assert_array_equal(hybrid.combine(recon, None, mask, spec)[0], recon[0])  # alpha does not rescale it
  assert spec.formula() == "reconstruction"
  plain = models.build("maskedskip_unet", latent_dim=8, channels=1)  # e.g. a bundle given with --model
  with pytest.raises(UserError, match="eval.mask_weight=1.0 .* has no mask head"):
    evaluate.evaluate_store(plain, None, None, out_dir="unused", mask_weight=1.0)


def _drop_config_key(bundle_dir, key):
  """model.json as a bundle written before `key` existed, with the manifest to match."""
  path = os.path.join(bundle_dir, bundle.CONFIG_FILE)
  doc = json.loads(open(path).read())
  del doc[key]
  data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
  with open(path, "wb") as f:
    f.write(data)
  manifest_path = os.path.join(bundle_dir, bundle.MANIFEST_FILE)
  manifest = json.loads(open(manifest_path).read())
  sha256 = hashlib.sha256(data).hexdigest()
  manifest["files"][bundle.CONFIG_FILE] = {"sha256": sha256, "size": len(data)}
  with open(manifest_path, "w") as f:
    json.dump(manifest, f)


def test_bundle_round_trip_rebuilds_the_head_and_old_bundles_still_load(tmp_path):
  model = models.build("maskedskip_unet", latent_dim=8, channels=1, mask_head=True)
  variables = random_variables(model, seed=2)
  path = str(tmp_path / "head")
  bundle.save(path, variables, {"variant": "maskedskip_unet", "latent_dim": 8, "channels": 1, "mask_head": True})
  loaded, loaded_vars, config = bundle.load(path)
  assert loaded == model and loaded.mask_head and config["mask_head"] is True
  x = _clips(3, batch=3)
  want_recon, want_mask = jit_apply(model, variables, x, return_mask=True)
  got_recon, got_mask = jit_apply(loaded, loaded_vars, x, return_mask=True)
  np.testing.assert_array_equal(got_recon, want_recon)
  np.testing.assert_array_equal(got_mask, want_mask)
  recon = inference.reconstruct(loaded, loaded_vars, x, batch_size=2)
  assert recon.shape == (3, H, W, 1)
  np.testing.assert_allclose(recon, want_recon, atol=1e-5, rtol=0)

  plain = models.build("maskedskip_unet", latent_dim=8, channels=1)
  old = str(tmp_path / "old")
  bundle.save(old, random_variables(plain), {"variant": "maskedskip_unet", "latent_dim": 8, "channels": 1})
  _drop_config_key(old, "mask_head")
  loaded, _, config = bundle.load(old)
  assert not loaded.mask_head and config["mask_head"] is False


def test_tiny_run_with_the_head_trains_evaluates_and_exports(tmp_path):
  root = tiny_run.make_dataset(str(tmp_path / "data"), num_train=1, num_test=1, frames=9)
  config = tiny_run.config(
    root,
    model__latent_dim=8,
    model__mask_head=True,
    train__paste_prob=0.5,
    train__num_steps=3,
    train__checkpoint_every_steps=3,
  )
  workdir = str(tmp_path / "run")
  assert loop.train(config, workdir)["step"] == 3
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    logged = [json.loads(line) for line in f]
  assert logged and all(np.isfinite(r["mask_loss"]) and r["mask_loss"] > 0 for r in logged)
  report = evaluate.run(config, workdir)
  assert report["num_frames"] == 9 and 0 <= report["frame_auc_micro"] <= 1
  assert report["frame_score"]["formula"] == "reconstruction" and report["frame_score"]["mask_weight"] == 0
  # Scored by the head's map alone, the headline is what every mask-head report lists as mask_head_score.
  by_map = evaluate.run(
    config_lib.with_values(config, {"eval.hybrid_alpha": 0.0, "eval.mask_weight": 1.0}),
    workdir,
    out_dir=str(tmp_path / "by_map"),
  )
  assert by_map["frame_score"]["formula"] == "hybrid_alpha * reconstruction + mask_weight * mask head"
  assert by_map["frame_auc_micro"] == report["mask_head_score"]["frame_auc_micro"]
  # The head changes the checkpoint's shapes: a config without it is another experiment.
  with pytest.raises(UserError, match="model.mask_head=True"):
    train_state.restore_variables(config_lib.with_values(config, {"model.mask_head": False}), workdir)
  path = export.run(config, workdir, config_name="tiny")
  model, variables, model_config = bundle.load(path)
  assert model.mask_head and model_config["mask_head"] is True
  clips = _clips(4, batch=1)
  recon = inference.reconstruct(model, variables, clips)
  assert recon.shape == (1, H, W, 1)
  np.testing.assert_allclose(np.asarray(bundle.load_exported(path)(clips)), recon, atol=1e-5, rtol=0)
