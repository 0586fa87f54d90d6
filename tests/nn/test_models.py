"""The nine variants: parameter counts, shapes, errors, masked-kernel optimiser modes."""

import json
import os

from flax import traverse_util
import jax
import jax.numpy as jnp
from model_helpers import REFERENCE_COUNTS
from model_helpers import init_shapes
from model_helpers import random_variables
import numpy as np
import optax
import pytest

from maskedskip_jax.errors import UserError
from maskedskip_jax.nn import initialization
from maskedskip_jax.nn import layers
from maskedskip_jax.nn import losses
from maskedskip_jax.nn import models
from maskedskip_jax.nn import ssmctb
from maskedskip_jax.train import optim


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


# The variable tree (every collection, path and shape) as the single-method model built it before `encode`/`decode`
# existed, for every variant and for SSMCTB placements and the mask head; each entry after the first is written as
# the paths it adds to and drops from an earlier one.
LAYOUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "param_layout.json")


def _layout(model):
  flat = traverse_util.flatten_dict(init_shapes(model))
  return sorted("/".join(p) + " " + "x".join(map(str, leaf.shape)) for p, leaf in flat.items())


def test_variable_paths_and_shapes_are_those_checkpoints_were_written_with():
  with open(LAYOUT) as f:
    cases = json.load(f)
  want = {}
  for name, case in cases.items():
    if "paths" in case:
      want[name] = case["paths"]
    else:
      want[name] = sorted(set(want[case["base"]]) - set(case["drop"]) | set(case["add"]))
    kwargs = dict(case["build"])
    model = models.build(kwargs.pop("variant"), latent_dim=16, channels=1, **kwargs)
    assert _layout(model) == want[name], name
  assert set(models.VARIANTS) <= set(cases)


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


@pytest.fixture
def cache_every_compile():
  """Op by op, a forward compiles a few hundred one-op programs, each far below the persistent compilation cache's
  one-second threshold: here they all go into the cache (where the suite has one), and a rerun reads them back."""
  threshold = jax.config.jax_persistent_cache_min_compile_time_secs
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
  yield
  jax.config.update("jax_persistent_cache_min_compile_time_secs", threshold)


@pytest.mark.usefixtures("cache_every_compile")
@pytest.mark.parametrize(
  "variant,kwargs",
  [
    ("maskedskip_unet", dict(mask_head=True)),
    ("autoencoder", dict(ssmctb={"placement": "latent_skip"})),
    ("masked2d_skip_unet", {}),
    ("conv3d_skip_unet", dict(temporal=5, ssmctb={"placement": "all_skips", "dims": 3})),
    ("unet", dict(ssmctb={"placement": "decoder"})),
  ],
)
def test_decode_after_encode_is_the_model(variant, kwargs):
  model = models.build(variant, latent_dim=8, channels=1, **kwargs)
  b, t = 2, model.temporal
  x = jax.random.uniform(jax.random.key(0), (b, t, 32, 32, 1))
  v = ssmctb.without_losses(random_variables(model))
  # Op by op (no jit), so both routes run the very same computations: the results are bit-identical.
  want = model.apply(v, x, return_mask=model.mask_head)
  feats = model.apply(v, x.reshape(b * t, 32, 32, 1), method=models.MaskedSkipUNet.encode)
  assert [f.shape for f in feats] == [(b * t, 16, 16, 1), (b * t, 8, 8, 2), (b * t, 4, 4, 4), (b * t, 2, 2, 8)]
  clips = tuple(f.reshape(b, t, *f.shape[1:]) for f in feats)
  got = model.apply(v, clips, return_mask=model.mask_head, method=models.MaskedSkipUNet.decode)
  for w, g in zip(jax.tree_util.tree_leaves(want), jax.tree_util.tree_leaves(got), strict=True):
    np.testing.assert_array_equal(np.asarray(g), np.asarray(w))
  with pytest.raises(UserError, match="model.encode"):
    model.apply(v, x, method=models.MaskedSkipUNet.encode)
  with pytest.raises(UserError, match="model input: expected 1 channels"):
    model.apply(v, jnp.zeros((2, 32, 32, 3)), method=models.MaskedSkipUNet.encode)
  with pytest.raises(UserError, match="model.decode"):
    model.apply(v, feats, method=models.MaskedSkipUNet.decode)
