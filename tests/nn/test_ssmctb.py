"""SSMCTB: corner-only mask, receptive fields, block shapes, Huber self-supervised loss, channel gate, the sow
contract, the 3-D geometry a model gets and the paper's placement (instead of the penultimate conv layer)."""

import itertools

from flax import traverse_util
import flax.linen as nn
import jax
import jax.numpy as jnp
from model_helpers import init_shapes
from model_helpers import jit_apply
import numpy as np
import optax
import pytest

from maskedskip_jax.errors import UserError
from maskedskip_jax.nn import layers
from maskedskip_jax.nn import models
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


def test_options_placements_and_checks():
  opt = ssmctb.Options("latent_skip")
  assert [opt.at_skip(i) for i in range(1, 5)] == [False, False, False, True] and not opt.at_decoder()
  assert all(ssmctb.Options("all_skips").at_skip(i) for i in range(1, 5))
  assert ssmctb.Options("decoder").at_decoder() and not ssmctb.Options("none").at_skip(4)
  penultimate = ssmctb.Options("penultimate", dims=3, depth="paper")
  assert penultimate.at_penultimate() and not penultimate.at_decoder() and not any(map(penultimate.at_skip, range(5)))
  assert penultimate.check(temporal=1).kernel_depth(1) is None  # the decoder block is always 2-D
  ssmctb.Options("all_skips", dims=3).check(temporal=3)
  ssmctb.Options("decoder", dims=3).check(temporal=1)  # the decoder block is always 2-D
  for bad in (
    ssmctb.Options("everywhere"),
    ssmctb.Options("latent_skip", dims=4),
    ssmctb.Options("latent_skip", delta=0.0),
    ssmctb.Options("latent_skip", dims=3, depth="cube"),
  ):
    with pytest.raises(UserError):
      bad.check(temporal=3)
  with pytest.raises(UserError):  # a T=1 clip has no neighbouring frames for 3-D corners
    ssmctb.Options("latent_skip", dims=3).check(temporal=1)


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


def test_3d_depth_the_model_gets_and_the_minimum_clip_it_names():
  kp, d = 1, 1
  paper = dict(placement="latent_skip", dims=3, depth="paper")
  for t, want in ((5, (5, 5, 5)), (7, (5, 5, 5))):
    model = models.build("maskedskip_unet", latent_dim=16, channels=1, temporal=t, ssmctb=paper)
    assert init_shapes(model)["params"]["ssmctb_skip4"]["conv"]["masked_kernel"].shape == (*want, 16, 16)
  # 'clip' (what models built before issue 19 have) follows T: temporal distance (T-1)/2 - k'.
  clip = models.build("maskedskip_unet", latent_dim=16, channels=1, temporal=7, ssmctb={**paper, "depth": "clip"})
  assert init_shapes(clip)["params"]["ssmctb_skip4"]["conv"]["masked_kernel"].shape == (7, 5, 5, 16, 16)
  for t in (1, 3):
    with pytest.raises(UserError, match=r"model.ssmctb.depth: .* needs clips of T >= 2k'\+2d\+1 = 5 frames, got T="):
      ssmctb.Options(**paper, kernel_prime=kp, distance=d).check(temporal=t)
  with pytest.raises(UserError, match=r"T >= 2k'\+2d\+1 = 7 frames, got T=5"):
    models.build("maskedskip_unet", latent_dim=16, channels=1, temporal=5, ssmctb={**paper, "distance": 2})


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


def _flat(model):
  return {"/".join(p): v.shape for p, v in traverse_util.flatten_dict(init_shapes(model)["params"]).items()}


def test_penultimate_placement_replaces_the_last_decoder_conv_layer():
  base = _flat(models.build("maskedskip_unet", latent_dim=16, channels=1))
  penultimate = _flat(models.build("maskedskip_unet", latent_dim=16, channels=1, ssmctb={"placement": "penultimate"}))
  count = lambda flat, prefix="": sum(int(np.prod(s)) for p, s in flat.items() if p.startswith(prefix))
  gone = {p for p in base if p not in penultimate}
  assert gone == {f"decoder_4/convs_{i}/{leaf}" for i in range(3) for leaf in ("kernel", "bias")}
  # Hand counts at latent 16, grey: the 3/5/7 layer maps the 2 + 2 concatenated channels to 3 x 4 (9, 25, 49 taps).
  assert count(base, "decoder_4/convs_") == (9 + 25 + 49) * 4 * 4 + 3 * 4 == 1340
  # The block keeps its input's 4 channels: a 5x5 masked conv (+ bias) and the transformer gate on 4 tokens.
  assert count(penultimate, "ssmctb_penultimate/conv") == 5 * 5 * 4 * 4 + 4 == 404
  transformer = (64 + 64) + 4 * 64 + 2 * (2 * 2 * 64 + 4 * (64 * 64 + 64) + (64 * 256 + 256) + (256 * 64 + 64))
  assert count(penultimate, "ssmctb_penultimate/transformer") == transformer == 100352
  # Downstream only widths follow: BatchNorm 12 -> 4 channels, then depth-to-space 3 -> 1 into the 1x1 output conv.
  assert (base["decoder_4/batch_norm_1/scale"], penultimate["decoder_4/batch_norm_1/scale"]) == ((12,), (4,))
  assert (base["decoder_4/conv_last/kernel"], penultimate["decoder_4/conv_last/kernel"]) == ((1, 1, 3, 1), (1, 1, 1, 1))
  assert count(penultimate) == count(base) - 1340 + 404 + transformer - 2 * (12 - 4) - (3 - 1)
  assert {p for p in penultimate if p not in base} == {p for p in penultimate if p.startswith("ssmctb_penultimate/")}


def test_penultimate_block_sits_on_the_concatenation_and_needs_a_width_depth_to_space_can_split():
  model = models.build("maskedskip_unet", latent_dim=16, channels=1, ssmctb={"placement": "penultimate"})
  x = jax.ShapeDtypeStruct((2, 3, 32, 32, 1), jnp.float32)
  variables = ssmctb.without_losses(init_shapes(model))
  inputs = {}

  def record(call, args, kwargs, context):
    if context.method_name == "__call__" and context.module.name in ("ssmctb_penultimate", "decoder_4"):
      inputs[context.module.name] = args[0].shape
    return call(*args, **kwargs)

  with nn.intercept_methods(record):  # shapes only: the loss joining a train step is tests/train's
    y, upd = jax.eval_shape(
      lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats", ssmctb.LOSS_COLLECTION]), variables, x
    )
  assert y.shape == (2, 32, 32, 1) and set(upd[ssmctb.LOSS_COLLECTION]) == {"ssmctb_penultimate"}
  assert inputs == {"ssmctb_penultimate": (2, 16, 16, 4), "decoder_4": (2, 16, 16, 4)}  # [decoder 3, skip 1]
  with pytest.raises(UserError, match="'penultimate' .* its input's width, 2 here, .* multiple of 4"):
    models.build("maskedskip_unet", latent_dim=8, channels=1, ssmctb={"placement": "penultimate"})
