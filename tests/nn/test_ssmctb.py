"""SSMCTB: corner-only mask, block shapes, Huber self-supervised loss, channel gate, the sow contract."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
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


@pytest.mark.parametrize(
  "temporal,centre,shape,out_shape",
  [
    (None, False, (2, 8, 8, 4), (2, 8, 8, 4)),
    (3, True, (2, 3, 8, 8, 4), (2, 8, 8, 4)),
    (3, False, (2, 3, 8, 8, 4), (2, 3, 8, 8, 4)),
    (5, True, (2, 3, 8, 8, 4), (2, 8, 8, 4)),
  ],
)
def test_block_shapes(temporal, centre, shape, out_shape):
  block = ssmctb.SSMCTB(temporal=temporal, centre_frame=centre)
  x = jax.random.uniform(jax.random.key(0), shape)
  variables = block.init(jax.random.key(1), x)
  kernel = variables["params"]["conv"]["masked_kernel"]
  assert kernel.shape == (*ssmctb.ssmctb_mask(1, 1, temporal).shape[:-2], 4, 4)
  assert block.apply(variables, x).shape == out_shape


def test_block_rejects_wrong_rank():
  with pytest.raises(UserError):
    ssmctb.SSMCTB(temporal=3).init(jax.random.key(0), jnp.zeros((1, 8, 8, 2)))


def test_huber_matches_optax_on_both_sides_of_delta():
  e = jnp.linspace(-3.0, 3.0, 61)
  for delta in (0.3, 1.0, 2.5):
    np.testing.assert_allclose(ssmctb.huber(e, delta), optax.huber_loss(e, delta=delta), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("temporal,centre", [(None, False), (3, True), (3, False)])
def test_sown_loss_is_weighted_huber_between_output_and_input(temporal, centre):
  delta, weight = 0.05, 0.3
  block = ssmctb.SSMCTB(temporal=temporal, centre_frame=centre, delta=delta, weight=weight)
  shape = (2, 8, 8, 4) if temporal is None else (2, 3, 8, 8, 4)
  x = 2.0 * jax.random.uniform(jax.random.key(0), shape)
  variables = ssmctb.without_losses(block.init(jax.random.key(1), x))
  out, upd = block.apply(variables, x, mutable=["losses"])
  target = x[:, 1] if centre else x
  err = np.abs(np.asarray(out) - np.asarray(target))
  assert (err < delta).any() and (err > delta).any()  # both branches of the Huber loss are exercised
  expected = weight * np.mean(optax.huber_loss(out, target, delta=delta))
  np.testing.assert_allclose(float(upd["losses"]["ssl_loss"]), expected, rtol=1e-5)
  np.testing.assert_allclose(float(ssmctb.total_ssl_loss(upd)), expected, rtol=1e-5)


def test_output_is_relu_conv_times_a_gate_in_0_1():
  block = ssmctb.SSMCTB()
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 4))
  params = block.init(jax.random.key(1), x)["params"]
  conv = layers.Conv(4, (5, 5), ssmctb.ssmctb_mask(1, 1))
  y = nn.relu(conv.apply({"params": params["conv"]}, x))
  gate = ssmctb.ChannelTransformerGate().apply({"params": params["transformer"]}, y)
  assert gate.shape == (2, 4)
  assert bool(jnp.all((gate > 0) & (gate < 1)))
  np.testing.assert_allclose(block.apply({"params": params}, x), y * gate[:, None, None, :], rtol=1e-6)
  # Gates are per image: changing one image of the batch must not change another's.
  x2 = x.at[0].set(0.0)
  gate2 = ssmctb.ChannelTransformerGate().apply(
    {"params": params["transformer"]}, nn.relu(conv.apply({"params": params["conv"]}, x2))
  )
  np.testing.assert_allclose(gate2[1:], gate[1:], rtol=1e-6)


class _TwoBlocks(nn.Module):
  @nn.compact
  def __call__(self, x):
    x = ssmctb.SSMCTB(weight=0.5, name="a")(x)
    return ssmctb.SSMCTB(weight=2.0, name="b")(x)


def test_sow_contract_eval_is_free_and_init_leftovers_do_not_double_count():
  model = _TwoBlocks()
  x = jax.random.uniform(jax.random.key(0), (2, 8, 8, 4))
  full = model.init(jax.random.key(1), x)
  assert "losses" in full and "losses" not in ssmctb.without_losses(full)
  y = model.apply(full, x)  # nothing mutable: plain array out
  assert isinstance(y, jax.Array)
  _, clean = model.apply(ssmctb.without_losses(full), x, mutable=["losses"])
  _, stale = model.apply(full, x, mutable=["losses"])
  assert set(clean["losses"]) == {"a", "b"}
  np.testing.assert_allclose(float(ssmctb.total_ssl_loss(stale)), float(ssmctb.total_ssl_loss(clean)), rtol=1e-6)
  manual = float(clean["losses"]["a"]["ssl_loss"]) + float(clean["losses"]["b"]["ssl_loss"])
  np.testing.assert_allclose(float(ssmctb.total_ssl_loss(clean)), manual, rtol=1e-6)
  assert float(ssmctb.total_ssl_loss({})) == 0.0


def test_ssl_loss_trains_conv_and_transformer_and_can_stop_the_input_gradient():
  x = jax.random.uniform(jax.random.key(0), (2, 8, 8, 4))
  input_grads = {}
  for stop in (False, True):
    block = ssmctb.SSMCTB(stop_target_gradient=stop)
    params = block.init(jax.random.key(1), x)["params"]

    def loss(p, inp, block=block):
      _, upd = block.apply({"params": p}, inp, mutable=["losses"])
      return ssmctb.total_ssl_loss(upd)

    g = jax.grad(loss)(params, x)
    assert float(jnp.abs(g["conv"]["masked_kernel"]).max()) > 0
    assert float(jnp.abs(g["transformer"]["projection"]["kernel"]).max()) > 0
    # d loss / d input through the target term alone is -(huber'); with the target stopped the input
    # gradient comes only through the conv, so the two must differ.
    input_grads[stop] = jax.grad(loss, argnums=1)(params, x)
  assert not np.allclose(input_grads[True], input_grads[False])


def test_options_placements_and_checks():
  opt = ssmctb.Options("latent_skip")
  assert [opt.at_skip(i) for i in range(1, 5)] == [False, False, False, True] and not opt.at_decoder()
  assert all(ssmctb.Options("all_skips").at_skip(i) for i in range(1, 5))
  assert ssmctb.Options("decoder").at_decoder() and not ssmctb.Options("none").at_skip(4)
  ssmctb.Options("all_skips", dims=3).check(temporal=3)
  ssmctb.Options("decoder", dims=3).check(temporal=1)  # the decoder block is always 2-D
  for bad in (
    ssmctb.Options("everywhere"),
    ssmctb.Options("latent_skip", dims=4),
    ssmctb.Options("latent_skip", delta=0.0),
  ):
    with pytest.raises(UserError):
      bad.check(temporal=3)
  with pytest.raises(UserError):  # a T=1 clip has no neighbouring frames for 3-D corners
    ssmctb.Options("latent_skip", dims=3).check(temporal=1)
