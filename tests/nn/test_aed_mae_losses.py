"""AED-MAE losses and score (nn/aed_mae_losses.py): each equation and the frame score on hand-computed values."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from maskedskip_jax.nn import aed_mae_losses as L


def _token_frame(values):
  """(1, 8, 8, len(values[0])) frame whose 4 x 4 token i has pixel (0, 0) = values[i] and (1, 1) = values[i] / 2."""
  x = np.zeros((1, 8, 8, len(values[0])), np.float32)
  for i, v in enumerate(values):
    r, c = 4 * (i // 2), 4 * (i % 2)
    x[0, r, c], x[0, r + 1, c + 1] = v, np.asarray(v) / 2
  return jnp.asarray(x)


def test_motion_weights_eq1_eq2_by_hand():
  # Per token (raster order) the max gradient per channel: (0.5, 0.1), (0, 0), (0.2, 0.2), (0, 1.0);
  # channel means 0.3, 0, 0.2, 0.5 sum to 1, so they are the weights.
  frame = _token_frame([(0.5, 0.1), (0.0, 0.0), (0.2, 0.2), (0.0, 1.0)])
  previous = jnp.zeros_like(frame)
  w = L.motion_weights(frame, previous, 4, median=0)
  np.testing.assert_allclose(w, [[0.3, 0.0, 0.2, 0.5]], atol=1e-6)
  np.testing.assert_allclose(L.motion_weights(previous, frame, 4, median=0), w, atol=1e-6)  # |x_t - x_{t-1}|
  # The anomaly map is added on every channel before the per-token max: token 1 gets (1, 1) -> 1; sum 2.
  anomaly = jnp.zeros((1, 8, 8)).at[0, 0, 5].set(1.0)
  np.testing.assert_allclose(
    L.motion_weights(frame, previous, 4, anomaly, median=0), [[0.15, 0.5, 0.1, 0.25]], atol=1e-6
  )


def test_motion_weights_median_filter_and_static_frames():
  previous = jnp.zeros((1, 8, 8, 1))
  frame = previous.at[0, 1, 1].set(1.0).at[0, 4:, 4:].set(0.6)  # a lone flicker and a moving 4 x 4 block
  np.testing.assert_allclose(L.motion_weights(frame, previous, 4), [[0, 0, 0, 1]], atol=1e-6)
  np.testing.assert_allclose(L.motion_weights(frame, previous, 4, median=0)[0, 0], 1.0 / 1.6, atol=1e-6)
  np.testing.assert_allclose(L.motion_weights(previous, previous, 4), [[0.25] * 4])  # uniform, not 0 / 0


def test_reconstruction_loss_eq3_by_hand():
  target = jnp.zeros((2, 8, 8, 2))
  pred = target.at[0, :4, :4, 0].set(0.5).at[0, 6, 6, 1].set(1.0)  # token 0: 16 * 0.25 = 4; token 3: 1
  w = jnp.asarray([[0.3, 0.0, 0.2, 0.5], [0.25] * 4])
  # Frame 0: (1/4)(0.3 * 4 + 0.5 * 1) = 0.425; frame 1: 0; batch mean 0.2125.
  np.testing.assert_allclose(L.reconstruction_loss(target, pred, w, 4), 0.2125, rtol=1e-6)


def test_self_distillation_loss_eq4_by_hand_and_only_the_student_learns():
  teacher = jnp.zeros((1, 8, 8, 2)).at[0, 0, 4:, :].set(0.5)  # token 1: 4 pixels x 2 channels x 0.25 = 2
  student = jnp.zeros((1, 8, 8, 2))
  w = jnp.asarray([[0.1, 0.4, 0.2, 0.3]])
  np.testing.assert_allclose(L.self_distillation_loss(teacher, student, w, 4), 0.4 * 2 / 4, rtol=1e-6)
  g_teacher, g_student = jax.grad(L.self_distillation_loss, argnums=(0, 1))(teacher, student, w, 4)
  assert not np.asarray(g_teacher).any() and np.asarray(g_student).any()


def test_classification_loss_eq5_by_hand():
  loss = L.classification_loss(jnp.asarray([0.0, math.log(3.0)]), jnp.asarray([1.0, 0.0]))
  np.testing.assert_allclose(loss, (math.log(2.0) + math.log(4.0)) / 2, rtol=1e-6)  # p = 0.5 and 0.75


def test_pixel_score_eq6_by_hand():
  frame = jnp.full((1, 1, 1, 1), 0.5)
  teacher = jnp.asarray([0.2, 0.1]).reshape(1, 1, 1, 2)  # frame error 0.3^2, predicted map 0.1^2 -> 0.1
  student = jnp.asarray([0.2, 0.4]).reshape(1, 1, 1, 2)  # teacher-student gap 0.3^2 = 0.09
  o = L.pixel_scores(frame, teacher, student, jnp.zeros(1))  # sigmoid(0) = 0.5
  np.testing.assert_allclose(o, [[[0.4 * 0.1 + 0.3 * 0.09 + 0.3 * 0.5]]], rtol=1e-6)
  o = L.pixel_scores(frame, teacher, student, jnp.zeros(1), alpha=1.0, beta=0.0, gamma=0.0)
  np.testing.assert_allclose(o, [[[0.1]]], rtol=1e-6)


def test_smooth_volume_is_an_in_bounds_mean():
  delta = jnp.zeros((5, 5, 5)).at[2, 2, 2].set(27.0)
  np.testing.assert_allclose(L.smooth_volume(delta, 3)[1:4, 1:4, 1:4], np.ones((3, 3, 3)), rtol=1e-6)
  assert float(L.smooth_volume(delta, 3)[0, 0, 0]) == 0.0
  corner = jnp.zeros((4, 4, 4)).at[0, 0, 0].set(8.0)
  np.testing.assert_allclose(L.smooth_volume(corner, 3)[0, 0, 0], 1.0, rtol=1e-6)  # 8 voxels in bounds
  np.testing.assert_allclose(L.smooth_volume(jnp.full((3, 4, 5), 0.7)), np.full((3, 4, 5), 0.7), rtol=1e-6)


def test_temporal_gaussian_is_centred_normalised_and_keeps_length():
  k = np.asarray(L.gaussian_kernel(11.0, 37))
  np.testing.assert_allclose(k.sum(), 1.0, rtol=1e-6)
  assert k.argmax() == 18 and np.allclose(k, k[::-1])
  np.testing.assert_allclose(L.temporal_gaussian(jnp.zeros(41).at[20].set(1.0), 11.0, 37)[2:39], k, rtol=1e-5)
  assert L.temporal_gaussian(jnp.ones(5), *L.TEMPORAL_GAUSSIAN["shanghaitech"]).shape == (5,)


def test_frame_scores_filter_then_max_then_smooth():
  maps = jax.random.uniform(jax.random.key(0), (6, 8, 8))
  np.testing.assert_allclose(L.frame_scores(maps, box=1, taps=1), maps.max(axis=(1, 2)), rtol=1e-6)
  expected = L.temporal_gaussian(L.smooth_volume(maps, 3).max(axis=(1, 2)), 2.0, 5)
  np.testing.assert_allclose(L.frame_scores(maps, box=3, sigma=2.0, taps=5), expected, rtol=1e-6)
