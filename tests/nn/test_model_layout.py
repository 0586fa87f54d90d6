"""Model variables and methods: the variable layout checkpoints were written with, and decode after encode."""

import json
import os

from flax import traverse_util
import jax
import jax.numpy as jnp
from model_helpers import init_shapes
from model_helpers import random_variables
import numpy as np
import pytest

from maskedskip_jax.errors import UserError
from maskedskip_jax.nn import models
from maskedskip_jax.nn import ssmctb

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
