"""Masked kernels: the optimiser's frozen and train modes, and the masks each variant's kernels are traced with."""

from flax import traverse_util
import jax
from model_helpers import init_shapes
import numpy as np
import optax
import pytest

from maskedskip_jax.nn import initialization
from maskedskip_jax.nn import layers
from maskedskip_jax.nn import losses
from maskedskip_jax.nn import models
from maskedskip_jax.nn import ssmctb
from maskedskip_jax.train import optim


def _train_steps(masked_kernels, variant="maskedskip_unet", steps=3):
  model = models.build(variant, latent_dim=8, channels=1)
  # 32x32 keeps the latent map 2x2: at 1x1 the ed-masked 3x3 convs see only padding.
  x = jax.random.uniform(jax.random.key(0), (2, model.temporal, 32, 32, 1))
  v = initialization.init_variables(model, 1, x.shape)
  tx = optim.make_optimizer(1e-2, masked_kernels=masked_kernels)
  params, stats, opt = v["params"], v["batch_stats"], None
  opt = tx.init(params)

  @jax.jit
  def step(params, stats, opt):
    def loss_fn(p):
      y, upd = model.apply({"params": p, "batch_stats": stats}, x, train=True, mutable=["batch_stats"])
      return losses.norm_loss(x[:, model.temporal // 2], y), upd["batch_stats"]

    (loss, stats), g = jax.value_and_grad(loss_fn, has_aux=True)(params)
    upd, opt = tx.update(g, opt, params)
    return optax.apply_updates(params, upd), stats, opt, g

  grads = []
  for _ in range(steps):
    params, stats, opt, g = step(params, stats, opt)
    grads.append(g)
  return v["params"], params, grads


def test_frozen_mode_keeps_masked_kernels_bit_identical_while_biases_move():
  before, after, _ = _train_steps("frozen")
  for i in range(1, 5):
    np.testing.assert_array_equal(
      np.asarray(after[f"mconv{i}"]["masked_kernel"]), np.asarray(before[f"mconv{i}"]["masked_kernel"])
    )
    assert np.any(np.asarray(after[f"mconv{i}"]["bias"]) != np.asarray(before[f"mconv{i}"]["bias"]))
  assert np.any(
    np.asarray(after["encoder_1"]["convs_0"]["kernel"]) != np.asarray(before["encoder_1"]["convs_0"]["kernel"])
  )


@pytest.mark.parametrize("variant", ["maskedskip_unet", "ed_masks_skip_unet"])
def test_train_mode_moves_masked_kernels_but_masked_taps_stay_zero(variant):
  before, after, grads = _train_steps("train", variant)
  model = models.build(variant, latent_dim=8, channels=1)
  labels = models.masked_kernel_labels(after)
  leaves = jax.tree_util.tree_leaves_with_path(after)
  masked = [(p, a) for (p, a), label in zip(leaves, jax.tree_util.tree_leaves(labels)) if label == "masked"]
  assert len(masked) == (4 if variant == "maskedskip_unet" else 4 + 8 * 3)
  for i in range(1, 5):
    k = np.asarray(after[f"mconv{i}"]["masked_kernel"])
    t, ks = model.temporal, k.shape[1]
    m = models.SKIP_MASKS[i - 1]
    lo = (ks - m) // 2
    assert np.all(k[t // 2, lo : lo + m, lo : lo + m] == 0)
    assert np.all(np.asarray(grads[-1][f"mconv{i}"]["masked_kernel"])[t // 2, lo : lo + m, lo : lo + m] == 0)
    assert np.any(k != np.asarray(before[f"mconv{i}"]["masked_kernel"]))


@pytest.mark.parametrize(
  "variant",
  ["maskedskip_unet", "masked2d_skip_unet", "ed_masks_skip_unet", "conv3d_skip_unet", "two_mask", "autoencoder"],
)
def test_kernel_masks_are_the_modules_masks(variant):
  model = models.build(variant, latent_dim=16, channels=1, temporal=None if variant != "two_mask" else 5)
  s, t = models.spec(variant), model.temporal
  want = {}
  for i, active in enumerate(s.active, start=1):
    if active and s.skips in ("masked3d", "masked2d"):
      k, m = models.SKIP_KERNELS[i - 1], models.SKIP_MASKS[i - 1]
      want[(f"mconv{i}",)] = layers.centre_square_mask(k, m, None if s.skips == "masked2d" else t)
  if s.ed_mask:
    for block in [f"encoder_{i}" for i in range(1, 5)] + [f"decoder_{i}" for i in range(1, 5)]:
      for j, k in enumerate((3, 5, 7)):
        want[(block, f"convs_{j}")] = layers.centre_square_mask(k, k - 2)
  with layers.kernel_masks() as masks:
    shapes = init_shapes(model)
  assert set(masks) == set(want)
  for path, mask in masks.items():
    np.testing.assert_array_equal(mask, want[path])
  # Every masked kernel of the parameter tree has its mask, and nothing else does.
  flat = traverse_util.flatten_dict(shapes["params"])
  assert set(masks) == {p[:-1] for p in flat if p[-1] == "masked_kernel"}
  # Each init is seen afresh: no trace is reused.
  with layers.kernel_masks() as again:
    init_shapes(model)
  assert set(again) == set(want)


def test_kernel_masks_include_ssmctb_blocks():
  model = models.build("maskedskip_unet", latent_dim=16, channels=1, ssmctb={"placement": "latent_skip", "dims": 3})
  with layers.kernel_masks() as masks:
    init_shapes(model)
  np.testing.assert_array_equal(masks[("ssmctb_skip4", "conv")], ssmctb.ssmctb_mask(1, 1, 3))
  assert ("mconv4",) in masks
