"""SSMCTB block: shapes, the Huber self-supervised loss it sows, its channel gate and its loss's gradients."""

import flax.linen as nn
import jax
import jax.numpy as jnp
from model_helpers import jit_apply
import numpy as np
import optax
import pytest

from maskedskip_jax.errors import UserError
from maskedskip_jax.nn import layers
from maskedskip_jax.nn import ssmctb


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
  variables = jax.jit(block.init)(jax.random.key(1), x)
  kernel = variables["params"]["conv"]["masked_kernel"]
  assert kernel.shape == (*ssmctb.ssmctb_mask(1, 1, temporal).shape[:-2], 4, 4)
  assert jit_apply(block, variables, x).shape == out_shape


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
  variables = ssmctb.without_losses(jax.jit(block.init)(jax.random.key(1), x))
  out, upd = jit_apply(block, variables, x, mutable=["losses"])
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
    params = jax.jit(block.init)(jax.random.key(1), x)["params"]

    def loss(p, inp, block=block):
      _, upd = block.apply({"params": p}, inp, mutable=["losses"])
      return ssmctb.total_ssl_loss(upd)

    g = jax.jit(jax.grad(loss))(params, x)
    assert float(jnp.abs(g["conv"]["masked_kernel"]).max()) > 0
    assert float(jnp.abs(g["transformer"]["projection"]["kernel"]).max()) > 0
    # d loss / d input through the target term alone is -(huber'); with the target stopped the input
    # gradient comes only through the conv, so the two must differ.
    input_grads[stop] = jax.jit(jax.grad(loss, argnums=1))(params, x)
  assert not np.allclose(input_grads[True], input_grads[False])


def test_huber_loss_against_hand_computed_values():
  target = jnp.full((1, 2, 3, 1), 0.5)
  error = jnp.array([0.0, 0.5, -0.5, 1.0, -2.0, 3.0]).reshape(1, 2, 3, 1)
  # delta 1: e^2/2 below 1, |e| - 1/2 from 1 on -> 0, .125, .125, .5, 1.5, 2.5; mean 4.75 / 6.
  np.testing.assert_allclose(ssmctb.huber(error, 1.0).ravel(), [0, 0.125, 0.125, 0.5, 1.5, 2.5], rtol=1e-7)
  np.testing.assert_allclose(float(ssmctb.ssl_loss(target + error, target, 1.0, 1.0)), 4.75 / 6, rtol=1e-6)
  np.testing.assert_allclose(float(ssmctb.ssl_loss(target + error, target, 1.0, 0.1)), 0.475 / 6, rtol=1e-6)
  # delta 0.5: 0, .125, .125, .5 (1 - .25) / .. -> 0, .125, .125, .375, .875, 1.375; mean 2.875 / 6.
  np.testing.assert_allclose(ssmctb.huber(error, 0.5).ravel(), [0, 0.125, 0.125, 0.375, 0.875, 1.375], rtol=1e-7)
  np.testing.assert_allclose(float(ssmctb.ssl_loss(target + error, target, 0.5, 1.0)), 2.875 / 6, rtol=1e-6)
