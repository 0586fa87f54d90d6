"""The nine variants: parameter counts, shapes, input and build errors, bfloat16, host init and the norm loss."""

import jax
import jax.numpy as jnp
from model_helpers import REFERENCE_COUNTS
from model_helpers import init_shapes
import numpy as np
import pytest

from maskedskip_jax.errors import UserError
from maskedskip_jax.nn import initialization
from maskedskip_jax.nn import losses
from maskedskip_jax.nn import models


def test_all_variants_are_known():
  assert set(models.VARIANTS) == set(REFERENCE_COUNTS)


@pytest.mark.parametrize("variant", sorted(REFERENCE_COUNTS))
def test_reference_parameter_counts(variant):
  model = models.build(variant, latent_dim=512, channels=3)
  assert models.count_params(init_shapes(model)["params"]) == REFERENCE_COUNTS[variant]


@pytest.mark.parametrize("variant", sorted(REFERENCE_COUNTS))
def test_output_shapes(variant):
  model = models.build(variant, latent_dim=16, channels=1)
  x = jax.ShapeDtypeStruct((2, model.temporal, 32, 48, 1), jnp.float32)
  variables = jax.eval_shape(lambda x: model.init(jax.random.key(1), x), x)
  y, _ = jax.eval_shape(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]), variables, x)
  assert y.shape == (2, 32, 48, 1) and y.dtype == jnp.float32


@pytest.mark.parametrize("variant", ["maskedskip_unet", "autoencoder", "masked2d_skip_unet"])
def test_outputs_are_probabilities(variant):
  model = models.build(variant, latent_dim=8, channels=1)
  x = jax.random.uniform(jax.random.key(0), (2, model.temporal, 16, 32, 1))
  variables = initialization.init_variables(model, 1, x.shape)
  y = jax.jit(lambda v, x: model.apply(v, x))(variables, x)
  assert y.shape == (2, 16, 32, 1)
  assert float(y.min()) >= 0 and float(y.max()) <= 1 and float(y.std()) > 0


def test_skip_zeroing_variants_ignore_shallow_skips():
  # one_mask: only the latent skip carries signal, so its decoder sees zeros on the other three.
  model = models.build("one_mask", latent_dim=16, channels=1)
  shapes = init_shapes(model)["params"]
  assert "mconv4" in shapes and not any(f"mconv{i}" in shapes for i in (1, 2, 3))
  assert set(k for k in shapes if k.startswith("mconv")) == {"mconv4"}
  three = init_shapes(models.build("three_mask", latent_dim=16, channels=1))["params"]
  assert {k for k in three if k.startswith("mconv")} == {"mconv2", "mconv3", "mconv4"}


@pytest.mark.parametrize(
  "shape,needle",
  [
    ((1, 3, 40, 32, 1), "multiples of 16"),
    ((1, 5, 32, 32, 1), "T=3"),
    ((1, 3, 32, 32, 3), "channels"),
    ((3, 32, 32, 1), "(batch, T, H, W, C)"),
  ],
)
def test_bad_input_shapes_raise_user_error(shape, needle):
  model = models.build("maskedskip_unet", latent_dim=16, channels=1)
  with pytest.raises(UserError, match=needle.replace("(", r"\(").replace(")", r"\)")):
    model.init(jax.random.key(0), jnp.zeros(shape))


@pytest.mark.parametrize(
  "kwargs,needle",
  [
    (dict(temporal=4), "odd"),
    (dict(variant="unet", temporal=3), "single frames"),
    (dict(channels=2), "channels"),
    (dict(variant="nope"), "known: maskedskip_unet"),
  ],
)
def test_bad_build_arguments(kwargs, needle):
  args = dict(variant="maskedskip_unet", latent_dim=16)
  args.update(kwargs)
  with pytest.raises(UserError, match=needle):
    models.build(args.pop("variant"), **args)


def test_norm_loss_is_mean_channel_norm():
  t = jnp.zeros((2, 4, 4, 3))
  r = jnp.zeros((2, 4, 4, 3)).at[..., 0].set(3.0).at[..., 1].set(4.0)
  np.testing.assert_allclose(float(losses.norm_loss(t, r)), 5.0, rtol=1e-6)
  r2 = jnp.zeros((2, 4, 4, 3)).at[0, 0, 0].set(jnp.array([3.0, 4.0, 0.0]))
  np.testing.assert_allclose(float(losses.norm_loss(t, r2)), 5.0 / 32, rtol=1e-5)


def test_bf16_compute_keeps_float32_params_and_output():
  model = models.build("maskedskip_unet", latent_dim=8, channels=1, dtype=jnp.bfloat16)
  x = jax.random.uniform(jax.random.key(0), (1, 3, 16, 16, 1))
  v = initialization.init_variables(model, 1, x.shape)
  assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(v["params"]))
  y = jax.jit(model.apply)(v, x)
  assert y.dtype == jnp.float32
  ref = jax.jit(models.build("maskedskip_unet", latent_dim=8, channels=1).apply)(v, x)
  assert float(jnp.abs(y - ref).max()) < 0.05


@pytest.mark.parametrize("variant", ["maskedskip_unet", "ed_masks_skip_unet", "masked2d_skip_unet", "autoencoder"])
def test_host_init_matches_flax_init_layout_and_torch_distributions(variant):
  model = models.build(variant, latent_dim=16, channels=1)
  shape = (1, model.temporal, 32, 32, 1)
  v = initialization.init_variables(model, 3, shape)
  ref = init_shapes(model)
  assert jax.tree_util.tree_structure(v) == jax.tree_util.tree_structure(ref)
  for a, b in zip(jax.tree_util.tree_leaves(v), jax.tree_util.tree_leaves(ref)):
    assert a.shape == b.shape and a.dtype == b.dtype
  flat = jax.tree_util.tree_leaves_with_path(v["params"])
  for path, leaf in flat:
    name = path[-1].key
    leaf = np.asarray(leaf)
    if name in ("kernel", "masked_kernel"):
      bound = 1 / np.sqrt(np.prod(leaf.shape[:-1]))
      assert np.abs(leaf).max() <= bound and np.abs(leaf).max() > 0.5 * bound
  for i in range(1, 5):
    if f"mconv{i}" in v["params"]:
      k = np.asarray(v["params"][f"mconv{i}"]["masked_kernel"])
      m = models.SKIP_MASKS[i - 1]
      lo = (k.shape[-3] - m) // 2
      centre = k[model.temporal // 2] if k.ndim == 5 else k
      assert np.all(centre[lo : lo + m, lo : lo + m] == 0)
      assert np.count_nonzero(k == 0) == m * m * k.shape[-2] * k.shape[-1]
  if variant == "ed_masks_skip_unet":
    k7 = np.asarray(v["params"]["encoder_2"]["convs_2"]["masked_kernel"])
    assert np.all(k7[1:6, 1:6] == 0) and np.all(k7[0] != 0)
  bn = v["batch_stats"]["encoder_1"]["batch_norm_1"]
  assert np.all(np.asarray(bn["var"]) == 1) and np.all(np.asarray(bn["mean"]) == 0)
  same = initialization.init_variables(model, 3, shape)
  other = initialization.init_variables(model, 4, shape)
  k = lambda t: np.asarray(
    t["params"]["encoder_1"]["convs_0"]["masked_kernel" if variant == "ed_masks_skip_unet" else "kernel"]
  )
  np.testing.assert_array_equal(k(v), k(same))
  assert np.any(k(v) != k(other))
