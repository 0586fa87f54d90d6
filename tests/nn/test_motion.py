"""Motion weights on hand-made clips, the weighted loss, the motion and hybrid frame scores."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from maskedskip_jax.errors import UserError
from maskedskip_jax.nn import losses
from maskedskip_jax.nn import motion

BG, FG = 0.2, 0.9


def _square_clip(xs, size=16, side=4, top=6, channels=3):
  """One clip (1, T, size, size, C): a bright side x side square at column xs[t] of frame t."""
  clip = np.full((1, len(xs), size, size, channels), BG, np.float32)
  for t, x in enumerate(xs):
    clip[0, t, top : top + side, x : x + side] = FG
  return clip


def _moved(xs, size=16, side=4, top=6):
  """Pixels where the centre frame differs from a neighbour, counted per neighbour (0, 1 or 2)."""
  frames = _square_clip(xs, size, side, top, 1)[0, ..., 0]
  c = (len(xs) - 1) // 2
  return sum((frames[c] != frames[n]).astype(int) for n in (c - 1, c + 1))


def test_moving_square_gets_weight_only_where_it_moved():
  xs = (2, 6, 10)
  w = np.asarray(motion.motion_weights(jnp.asarray(_square_clip(xs))))[0]
  moved = _moved(xs)
  assert moved.any() and (moved == 0).any()
  assert w[moved == 0].max() < 1e-4
  # Per pixel the gradient is the mean over the two neighbours: a pixel that changed w.r.t. both weighs twice
  # one that changed w.r.t. one.
  np.testing.assert_allclose(w[moved > 0] / w[moved > 0].min(), moved[moved > 0], rtol=1e-4)
  np.testing.assert_allclose(w.mean(), 1.0, rtol=1e-5)


def test_static_clip_and_single_frame_give_uniform_weights():
  static = _square_clip((6, 6, 6))
  np.testing.assert_array_equal(motion.motion_weights(jnp.asarray(static)), 1.0)
  single = _square_clip((6,))
  np.testing.assert_array_equal(motion.motion_weights(jnp.asarray(single)), 1.0)
  assert float(motion.motion_frame_scores(jnp.asarray(static), patch=8)[0]) == 0.0


def test_patch_weights_are_constant_per_patch_and_follow_the_moving_patch():
  # The square stays inside the top-left 8x8 patch: that patch carries all the weight, evenly.
  w = np.asarray(motion.motion_weights(jnp.asarray(_square_clip((0, 2, 4), top=2)), patch=8))[0]
  np.testing.assert_allclose(w[:8, :8], 4.0, rtol=1e-4)  # one patch of four, frame mean 1
  assert w[8:].max() < 1e-4 and w[:, 8:].max() < 1e-4
  with pytest.raises(UserError):
    motion.motion_weights(jnp.asarray(_square_clip((0, 2, 4))), patch=5)


def test_median_filter_matches_scipy_and_removes_single_pixel_flicker():
  ndimage = pytest.importorskip("scipy.ndimage")
  frames = np.random.default_rng(0).uniform(size=(2, 9, 11, 2)).astype(np.float32)
  for size in (3, 5):
    ours = np.asarray(motion.median_filter(jnp.asarray(frames), size))
    ref = ndimage.median_filter(frames, size=(1, size, size, 1), mode="nearest")
    np.testing.assert_allclose(ours, ref, rtol=1e-6)
  flicker = _square_clip((6, 6, 6))
  flicker[0, 1, 1, 1] = 1.0  # one noisy pixel in the centre frame
  assert np.asarray(motion.motion_weights(jnp.asarray(flicker)))[0, 1, 1] > 100
  np.testing.assert_array_equal(motion.motion_weights(jnp.asarray(flicker), median=3), 1.0)


def test_anomaly_maps_and_uniform_mix():
  static = jnp.asarray(_square_clip((6, 6, 6)))
  amap = np.zeros((1, 16, 16), np.float32)
  amap[0, 2:6, 2:6] = 1.0
  w = np.asarray(motion.motion_weights(static, anomaly_maps=jnp.asarray(amap)))[0]
  np.testing.assert_allclose(w[2:6, 2:6], 16.0, rtol=1e-4)  # 16 of 256 pixels carry everything
  assert w[amap[0] == 0].max() < 1e-4
  mixed = np.asarray(motion.motion_weights(static, anomaly_maps=jnp.asarray(amap), uniform_mix=0.25))
  np.testing.assert_allclose(mixed.mean(), 1.0, rtol=1e-5)
  assert mixed.min() >= 0.25 - 1e-6


def test_weighted_loss_reduces_to_norm_loss_and_ignores_zero_weight_pixels():
  key1, key2 = jax.random.split(jax.random.key(0))
  target = jax.random.uniform(key1, (2, 8, 8, 3))
  recon = jax.random.uniform(key2, (2, 8, 8, 3))
  ones = jnp.ones((2, 8, 8))
  np.testing.assert_allclose(
    motion.motion_weighted_norm_loss(target, recon, ones), losses.norm_loss(target, recon), rtol=1e-6
  )
  weights = ones.at[:, :4].set(0.0)
  spoiled = recon.at[:, :4].set(5.0)  # huge errors only where the weight is zero
  np.testing.assert_allclose(
    motion.motion_weighted_norm_loss(target, spoiled, weights),
    motion.motion_weighted_norm_loss(target, recon, weights),
    rtol=1e-6,
  )


def test_motion_and_hybrid_frame_scores_jit():
  moving = _square_clip((2, 6, 10))
  clips = jnp.asarray(np.concatenate([moving, _square_clip((6, 6, 6))]))
  scores = jax.jit(motion.motion_frame_scores, static_argnames=("median", "patch"))(clips, patch=16)
  # patch = frame size: the score is the mean of the motion map.
  np.testing.assert_allclose(scores[0], np.mean(motion.motion_map(clips[:1])), rtol=1e-6)
  assert scores[0] > 0 and scores[1] == 0
  recon = jnp.asarray([0.3, 0.1])
  hybrid = jax.jit(motion.hybrid_frame_score)(recon, scores, 0.5, 2.0)
  np.testing.assert_allclose(hybrid, 0.5 * recon + 2.0 * scores, rtol=1e-6)
  weights = jax.jit(motion.motion_weights, static_argnames=("median", "patch"))(clips, median=3, patch=8)
  assert weights.shape == (2, 16, 16)
  with pytest.raises(UserError):
    motion.hybrid_frame_score(recon, scores[:1])
