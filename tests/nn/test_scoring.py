"""Score maps and patch-max frame scores on hand-made maps, and against a plain numpy loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from maskedskip_jax.errors import UserError
from maskedskip_jax.nn import scoring


def _loop_frame_score(m, patch=16):
  """Reference: every full patch of both grids, one at a time."""
  h, w = m.shape
  best = -np.inf
  for offset in {0, patch // 2}:
    for y in range(offset, h - patch + 1, patch):
      for x in range(offset, w - patch + 1, patch):
        best = max(best, m[y : y + patch, x : x + patch].mean())
  return best


def test_score_maps_is_channel_l2_over_sqrt_c():
  rng = np.random.default_rng(0)
  x = rng.random((2, 8, 8, 3), np.float32)
  y = rng.random((2, 8, 8, 3), np.float32)
  got = np.asarray(scoring.score_maps(jnp.asarray(x), jnp.asarray(y)))
  want = np.sqrt(((x - y) ** 2).sum(-1)) / np.sqrt(3)
  assert got.shape == (2, 8, 8) and got.dtype == np.float32
  np.testing.assert_allclose(got, want, rtol=1e-6)
  # Maximal error on every channel gives exactly 1, whatever C is.
  ones = scoring.score_maps(jnp.ones((1, 4, 4, 5)), jnp.zeros((1, 4, 4, 5)))
  np.testing.assert_allclose(np.asarray(ones), 1.0, rtol=1e-6)


def test_score_maps_bf16_inputs_give_float32():
  x = jnp.full((1, 4, 4, 3), 0.5, jnp.bfloat16)
  y = jnp.full((1, 4, 4, 3), 0.25, jnp.bfloat16)
  out = scoring.score_maps(x, y)
  assert out.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(out), 0.25, rtol=1e-6)


def test_hot_patch_on_aligned_grid():
  m = np.zeros((1, 64, 64), np.float32)
  m[0, 16:32, 32:48] = 1.0
  assert float(scoring.frame_scores(jnp.asarray(m))[0]) == pytest.approx(1.0)


def test_hot_patch_on_offset_grid_seen_in_full():
  m = np.zeros((1, 64, 64), np.float32)
  m[0, 24:40, 8:24] = 1.0  # straddles four aligned patches, exactly one offset patch
  aligned_only = max(m[0, y : y + 16, x : x + 16].mean() for y in range(0, 64, 16) for x in range(0, 64, 16))
  assert aligned_only == pytest.approx(0.25)
  assert float(scoring.frame_scores(jnp.asarray(m))[0]) == pytest.approx(1.0)


def test_uniform_map_scores_its_value():
  m = jnp.full((3, 32, 48), 0.375, jnp.float32)
  np.testing.assert_allclose(np.asarray(scoring.frame_scores(m)), 0.375, rtol=1e-6)


@pytest.mark.parametrize("shape,patch", [((3, 64, 48), 16), ((2, 40, 56), 16), ((2, 20, 28), 8), ((1, 5, 7), 1)])
def test_matches_numpy_loop(shape, patch):
  rng = np.random.default_rng(sum(shape))
  m = rng.random(shape).astype(np.float32) ** 4  # skewed, so the max patch is a specific one
  got = np.asarray(jax.jit(scoring.frame_scores, static_argnames="patch")(jnp.asarray(m), patch=patch))
  want = np.array([_loop_frame_score(mi, patch) for mi in m])
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_frame_scores_is_batched_independently():
  m = np.zeros((2, 32, 32), np.float32)
  m[1, 8:24, 8:24] = 0.75  # exact in binary, so the patch mean is exact
  np.testing.assert_allclose(np.asarray(scoring.frame_scores(jnp.asarray(m))), [0.0, 0.75], rtol=1e-6)


def test_map_smaller_than_patch_is_user_error():
  with pytest.raises(UserError):
    scoring.frame_scores(jnp.zeros((1, 8, 32)))


def test_pixel_maps_to_size():
  m = jnp.asarray(np.linspace(0, 1, 16, dtype=np.float32).reshape(1, 4, 4).repeat(2, 0))
  out = scoring.pixel_maps_to_size(m, (6, 10))
  assert out.shape == (2, 6, 10) and out.dtype == jnp.float32
  const = scoring.pixel_maps_to_size(jnp.full((1, 16, 16), 0.4), (24, 36))
  np.testing.assert_allclose(np.asarray(const), 0.4, rtol=1e-6)
  # Bilinear upsampling by 2 of a horizontal ramp keeps it monotone and within the input range.
  ramp = jnp.asarray(np.tile(np.arange(8, dtype=np.float32), (1, 8, 1)))
  up = np.asarray(scoring.pixel_maps_to_size(ramp, (16, 16)))[0, 0]
  assert np.all(np.diff(up) >= 0) and up.min() >= 0 and up.max() <= 7
