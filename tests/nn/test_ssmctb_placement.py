"""SSMCTB placement: the options' checks, the 3-D geometry a model gets and the paper's penultimate placement."""

from flax import traverse_util
import flax.linen as nn
import jax
import jax.numpy as jnp
from model_helpers import init_shapes
import numpy as np
import pytest

from maskedskip_jax.errors import UserError
from maskedskip_jax.nn import models
from maskedskip_jax.nn import ssmctb


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
