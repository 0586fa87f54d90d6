"""Masked convolutions, space<->depth and the centre-only fast path."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from maskedskip_jax.nn import layers


def test_centre_square_mask_matches_reference_ranges():
  m = layers.centre_square_mask(17, 7)[..., 0, 0]
  assert m.shape == (17, 17)
  zeros = np.argwhere(m == 0)
  assert zeros.min(0).tolist() == [5, 5] and zeros.max(0).tolist() == [11, 11]
  assert int((m == 0).sum()) == 49
  m3 = layers.centre_square_mask(3, 1, temporal=3)[..., 0, 0]
  assert m3.shape == (3, 3, 3)
  assert np.argwhere(m3 == 0).tolist() == [[1, 1, 1]]  # only the centre time slice is masked
  assert m3[0].all() and m3[2].all()


def test_masked_taps_get_zero_gradient_and_stay_zero_under_adam():
  mask = layers.centre_square_mask(5, 3, temporal=3)
  conv = layers.Conv(4, (3, 5, 5), mask, centre_frame=True)
  x = jax.random.uniform(jax.random.key(0), (2, 3, 8, 8, 3))
  params = conv.init(jax.random.key(1), x)["params"]
  zero = np.broadcast_to(mask == 0, params["masked_kernel"].shape)
  assert np.all(np.asarray(params["masked_kernel"])[zero] == 0)

  def loss(p):
    return jnp.sum(conv.apply({"params": p}, x) ** 2)

  tx = optax.adam(1e-1)
  opt = tx.init(params)
  for _ in range(3):
    g = jax.grad(loss)(params)
    assert np.all(np.asarray(g["masked_kernel"])[zero] == 0)
    assert np.any(np.asarray(g["masked_kernel"])[~zero] != 0)
    upd, opt = tx.update(g, opt, params)
    params = optax.apply_updates(params, upd)
  assert np.all(np.asarray(params["masked_kernel"])[zero] == 0)


def test_masked_taps_do_not_see_the_centre_pixel():
  # An impulse at the centre of the centre frame must not reach the output pixel it sits on
  # through the masked (centre 3x3) taps; the same pixel in frame t-1 must.
  mask = layers.centre_square_mask(5, 3, temporal=3)
  conv = layers.Conv(1, (3, 5, 5), mask, centre_frame=True)
  x = jnp.zeros((1, 3, 9, 9, 1))
  params = conv.init(jax.random.key(0), x)["params"]
  params = {"masked_kernel": jnp.ones_like(params["masked_kernel"]), "bias": jnp.zeros(1)}
  centre_hit = conv.apply({"params": params}, x.at[0, 1, 4, 4, 0].set(1.0))
  assert float(centre_hit[0, 4, 4, 0]) == 0.0
  assert float(centre_hit[0, 4, 6, 0]) == 1.0  # two pixels away: outside the 3x3 hole
  past_hit = conv.apply({"params": params}, x.at[0, 0, 4, 4, 0].set(1.0))
  assert float(past_hit[0, 4, 4, 0]) == 1.0


@pytest.mark.parametrize("masked", [True, False])
@pytest.mark.parametrize("temporal,kernel,mask_size", [(3, 5, 3), (5, 7, 3), (1, 3, 1)])
def test_centre_only_equals_full_3d_conv(masked, temporal, kernel, mask_size):
  mask = layers.centre_square_mask(kernel, mask_size, temporal) if masked else None
  x = jax.random.uniform(jax.random.key(2), (2, temporal, 12, 10, 6))
  fast = layers.Conv(5, (temporal, kernel, kernel), mask, centre_frame=True, centre_only=True)
  slow = layers.Conv(5, (temporal, kernel, kernel), mask, centre_frame=True, centre_only=False)
  variables = fast.init(jax.random.key(3), x)
  with jax.default_matmul_precision("highest"):
    a = fast.apply(variables, x)
    b = slow.apply(variables, x)
  assert a.shape == (2, 12, 10, 5)
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-5)


def test_space_to_depth_channel_order_and_inverse():
  x = jnp.arange(1 * 4 * 4 * 2, dtype=jnp.float32).reshape(1, 4, 4, 2)
  y = layers.space_to_depth(x)
  assert y.shape == (1, 2, 2, 8)
  # new channel = c*4 + p1*2 + p2, pixel (h, w) <- input (2h + p1, 2w + p2)
  for c in range(2):
    for p1 in range(2):
      for p2 in range(2):
        assert float(y[0, 1, 0, c * 4 + p1 * 2 + p2]) == float(x[0, 2 + p1, p2, c])
  np.testing.assert_array_equal(np.asarray(layers.depth_to_space(y)), np.asarray(x))


def test_convblock_shapes_and_last_block_skips_bn2_at_apply():
  x = jax.random.uniform(jax.random.key(0), (2, 8, 8, 3))
  enc = layers.ConvBlock(8)
  v = enc.init(jax.random.key(1, impl="rbg"), x, train=False)
  assert enc.apply(v, x, train=False).shape == (2, 4, 4, 8)
  dec = layers.ConvBlock(3, decode=True, last=True)
  v = dec.init(jax.random.key(1, impl="rbg"), x, train=False)
  assert "batch_norm_2" in v["params"]  # exists, as in the reference state_dict
  y, upd = dec.apply(v, x, train=True, mutable=["batch_stats"])
  assert y.shape == (2, 16, 16, 3)
  # bn2 is never applied: its running stats are untouched by a training step.
  np.testing.assert_array_equal(
    np.asarray(upd["batch_stats"]["batch_norm_2"]["mean"]), np.asarray(v["batch_stats"]["batch_norm_2"]["mean"])
  )
  assert np.any(
    np.asarray(upd["batch_stats"]["batch_norm_1"]["mean"]) != np.asarray(v["batch_stats"]["batch_norm_1"]["mean"])
  )


def test_torch_default_init_bounds():
  conv = layers.Conv(16, (3, 3))
  p = conv.init(jax.random.key(0), jnp.zeros((1, 8, 8, 4)))["params"]
  bound = 1 / np.sqrt(4 * 9)
  assert np.abs(np.asarray(p["kernel"])).max() <= bound
  assert np.abs(np.asarray(p["kernel"])).max() > 0.8 * bound
  assert np.abs(np.asarray(p["bias"])).max() <= bound
