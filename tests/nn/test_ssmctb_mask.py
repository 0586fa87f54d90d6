"""SSMCTB masks: the corner-only 2-D and 3-D kernels, the masked conv's taps and the block's receptive field."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from maskedskip_jax.errors import UserError
from maskedskip_jax.nn import layers
from maskedskip_jax.nn import ssmctb


def _corners_2d(kp, d):
  """Expected 2-D mask built the other way round: four k'xk' blocks placed at the corners."""
  k = 2 * kp + 2 * d + 1
  m = np.zeros((k, k))
  for top in (0, k - kp):
    for left in (0, k - kp):
      m[top : top + kp, left : left + kp] = 1
  return m


@pytest.mark.parametrize("kp,d", [(1, 1), (2, 1), (1, 0), (2, 3), (3, 2)])
def test_2d_mask_live_taps_are_exactly_the_corners(kp, d):
  m = ssmctb.ssmctb_mask(kp, d)
  k = 2 * kp + 2 * d + 1
  assert m.shape == (k, k, 1, 1)
  np.testing.assert_array_equal(m[..., 0, 0], _corners_2d(kp, d))
  # Every live tap is between d+1 and k'+d rows *and* columns away from the centre.
  offsets = np.abs(np.argwhere(m[..., 0, 0] == 1) - (k - 1) // 2)
  assert offsets.min() == d + 1 and offsets.max() == kp + d
  assert int(m.sum()) == 4 * kp * kp


@pytest.mark.parametrize("kp,d,depth", [(1, 1, 5), (1, 1, 3), (2, 1, 7), (1, 2, 7)])
def test_3d_mask_corners_in_first_and_last_time_slices(kp, d, depth):
  m = ssmctb.ssmctb_mask(kp, d, temporal=depth)[..., 0, 0]
  assert m.shape == (depth, 2 * kp + 2 * d + 1, 2 * kp + 2 * d + 1)
  for t in range(depth):
    live = t < kp or t >= depth - kp
    np.testing.assert_array_equal(m[t], _corners_2d(kp, d) if live else 0)
  assert int(m.sum()) == 8 * kp**3
  assert ssmctb.paper_kernel_size(kp, d) == m.shape[1]


@pytest.mark.parametrize("kp,d,depth", [(0, 1, None), (1, -1, None), (1, 1, 4), (2, 1, 3)])
def test_mask_rejects_bad_geometry(kp, d, depth):
  with pytest.raises(UserError):
    ssmctb.ssmctb_mask(kp, d, depth)


def test_masked_conv_predicts_each_pixel_from_corners_at_distance_d():
  # An impulse must not reach the output pixel it sits on, and must reach exactly the pixels d+1 away
  # diagonally: SAME padding puts the hole on the predicted pixel.
  kp, d = 1, 2
  conv = layers.Conv(1, (7, 7), ssmctb.ssmctb_mask(kp, d))
  x = jnp.zeros((1, 15, 15, 1)).at[0, 7, 7, 0].set(1.0)
  params = conv.init(jax.random.key(0), x)["params"]
  params = {"masked_kernel": jnp.ones_like(params["masked_kernel"]), "bias": jnp.zeros(1)}
  hit = np.asarray(conv.apply({"params": params}, x))[0, :, :, 0]
  expected = np.zeros((15, 15))
  for dy in (-3, 3):
    for dx in (-3, 3):
      expected[7 + dy, 7 + dx] = 1
  np.testing.assert_array_equal(hit, expected)


def _conv_support(block, x, where):
  """Input positions that reach the block's masked-conv output at `where` (before the gate mixes everything)."""
  variables = jax.jit(block.init)(jax.random.key(1), x)

  def conv_out(inp):
    _, state = block.apply(variables, inp, capture_intermediates=True, mutable=["intermediates"])
    return state["intermediates"]["conv"]["__call__"][0][(0, *where)].sum()

  return np.argwhere(np.abs(np.asarray(jax.jit(jax.grad(conv_out))(x))[0]).sum(-1) > 0)


def _corner_offsets(kp, d, axes):
  side = [o for o in range(-(kp + d), kp + d + 1) if abs(o) > d]
  return {tuple(o) for o in itertools.product(side, repeat=axes)}


@pytest.mark.parametrize("kp,d", [(1, 1), (1, 2), (2, 1)])
def test_2d_block_receptive_field_is_four_corners_around_a_masked_centre(kp, d):
  k = ssmctb.paper_kernel_size(kp, d)
  x = jax.random.uniform(jax.random.key(0), (1, 3 * k, 3 * k, 3))
  centre = (3 * k // 2, 3 * k // 2)
  offsets = {tuple(p - np.array(centre)) for p in _conv_support(ssmctb.SSMCTB(kernel_prime=kp, distance=d), x, centre)}
  assert offsets == _corner_offsets(kp, d, 2)  # 4 k'xk' corners: field k, and nothing within d of the centre
  assert max(max(map(abs, o)) for o in offsets) == (k - 1) // 2
  assert all(max(map(abs, o)) > d for o in offsets)  # the (2d+1)^2 masked region around the predicted pixel


@pytest.mark.parametrize("kp,d", [(1, 1), (1, 2), (2, 1)])
def test_3d_block_with_the_paper_depth_has_eight_corner_cubes_at_distance_d_in_time_too(kp, d):
  # Paper Fig. 3: the receptive field is k x k x k with k = 2k'+2d+1, the masked region its centre; a clip of
  # exactly k frames is the shortest whose centre frame sees frames d+1..d+k' away on both sides.
  depth = ssmctb.Options("latent_skip", 3, kp, d, depth="paper").check(temporal=2 * kp + 2 * d + 1).kernel_depth(99)
  k = ssmctb.paper_kernel_size(kp, d)
  assert depth == k
  x = jax.random.uniform(jax.random.key(0), (1, k, 2 * k, 2 * k, 2))
  centre = ((k - 1) // 2, k, k)
  offsets = {
    tuple(p - np.array(centre))
    for p in _conv_support(ssmctb.SSMCTB(kernel_prime=kp, distance=d, temporal=depth), x, centre)
  }
  assert offsets == _corner_offsets(kp, d, 3)
  assert len(offsets) == 8 * kp**3 and {abs(o[0]) for o in offsets} == set(range(d + 1, d + kp + 1))
