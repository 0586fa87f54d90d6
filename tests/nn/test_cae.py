"""Seed 003's CAE (nn/cae.py): Table 1's layers and parameter count, the encode / decode interface the streaming
scorer uses, dropout only in training, its input rules, and a round trip through a model bundle."""

import jax
import jax.numpy as jnp
from model_helpers import jit_apply
import numpy as np
import pytest

from maskedskip_jax.deploy import bundle
from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import streaming
from maskedskip_jax.nn import cae
from maskedskip_jax.nn import models

# Table 1: (layer, output shape without the batch, parameters) of the rows that have parameters.
TABLE_1 = {
  "encoder_1": ((200, 200, 32), 320),
  "encoder_2": ((100, 100, 64), 18_496),
  "encoder_3": ((50, 50, 128), 73_856),
  "encoder_4": ((25, 25, 128), 147_584),
  "decoder_1": ((50, 50, 64), 73_792),
  "decoder_2": ((100, 100, 32), 18_464),
  "decoder_3": ((200, 200, 1), 289),
}


def _paper_model(**kw):
  return models.build("cae", latent_dim=128, channels=1, temporal=3, **kw)


def _shapes(model, shape):
  return jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(shape)))


def test_table_1_parameter_count_and_rows():
  model = _paper_model()
  params = _shapes(model, (1, 3, 200, 200, 1))["params"]
  assert models.count_params(params) == 332_801
  for name, (_, count) in TABLE_1.items():
    assert models.count_params(params[name]) == count, name
  assert set(params) == set(TABLE_1)


def test_output_shapes_of_table_1():
  model = _paper_model()
  variables = cae.init_variables(model, 0, (1, 3, 200, 200, 1))
  _, inter = jax.eval_shape(  # shapes only: nothing is computed
    lambda v, x: model.apply(v, x, capture_intermediates=lambda m, name: name == "__call__"),
    variables,
    jnp.zeros((1, 3, 200, 200, 1)),
  )
  got = {k: v["__call__"][0].shape[1:] for k, v in inter["intermediates"].items() if k in TABLE_1}
  assert got == {k: shape for k, (shape, _) in TABLE_1.items()}


def _small(**kw):
  return models.build("cae", **{"latent_dim": 16, "channels": 1, "temporal": 3, **kw})


def test_encode_decode_is_the_forward_and_only_the_centre_frame_counts():
  model = _small()
  variables = cae.init_variables(model, 1, (2, 3, 32, 32, 1))
  clips = jnp.asarray(np.random.default_rng(0).random((2, 3, 32, 32, 1)), jnp.float32)
  recon = jit_apply(model, variables, clips)
  assert recon.shape == (2, 32, 32, 1) and float(recon.min()) >= 0 and float(recon.max()) <= 1
  (feats,) = streaming.encode(model, variables, clips.reshape(6, 32, 32, 1))
  assert feats.shape == (6, 4, 4, 16)
  windows = (feats.reshape(2, 3, *feats.shape[1:]),)
  np.testing.assert_allclose(streaming.decode_centre(model, variables, windows), recon, atol=1e-6)
  moved = clips.at[:, 0].set(1.0).at[:, 2].set(0.0)
  np.testing.assert_array_equal(jit_apply(model, variables, moved), recon)


def test_dropout_only_in_training():
  model = _small()
  variables = cae.init_variables(model, 0, (1, 3, 32, 32, 1))
  x = jnp.full((1, 3, 32, 32, 1), 0.5)
  a, b = (jit_apply(model, variables, x, train=True, rngs={"dropout": jax.random.key(k)}) for k in (0, 1))
  assert not np.allclose(a, b)
  np.testing.assert_array_equal(jit_apply(model, variables, x), jit_apply(model, variables, x))


def test_host_init_is_seeded_glorot_uniform_with_zero_biases():
  model = _paper_model()
  a, b = (cae.init_variables(model, s, (1, 3, 200, 200, 1))["params"] for s in (0, 0))
  jax.tree.map(np.testing.assert_array_equal, a, b)
  kernel = np.asarray(a["encoder_4"]["kernel"])
  limit = np.sqrt(6 / (9 * 128 + 9 * 128))
  assert np.abs(kernel).max() <= limit and kernel.std() == pytest.approx(limit / np.sqrt(3), rel=0.05)
  assert not np.any(np.asarray(a["encoder_4"]["bias"]))


@pytest.mark.parametrize(
  "shape, needle",
  [((1, 3, 204, 200, 1), "multiples of 8"), ((1, 1, 200, 200, 1), "T=3"), ((1, 3, 200, 200, 3), "1 channels")],
)
def test_bad_inputs_are_user_errors(shape, needle):
  with pytest.raises(UserError, match=needle):
    models.check_input_shape(_paper_model(), shape)


def test_build_refuses_what_the_cae_does_not_have():
  with pytest.raises(UserError, match="mask head"):
    _small(mask_head=True)
  with pytest.raises(UserError, match="SSMCTB"):
    _small(ssmctb={"placement": "latent_skip"})
  with pytest.raises(UserError, match="odd"):
    _small(temporal=2)


def test_round_trip_through_a_bundle(tmp_path):
  """The model config export.py writes, from the model's attributes, rebuilds the same network."""
  model = _small()
  variables = cae.init_variables(model, 2, (1, 3, 32, 32, 1))
  model_config = {k: getattr(model, k) for k in bundle.ARCH_KEYS} | {"image_size": [32, 32]}
  model_config["ssmctb"] = {"placement": "none"}
  bundle.save(str(tmp_path / "b"), variables, model_config, example_shape=(2, 3, 32, 32, 1))
  loaded, loaded_vars, doc = bundle.load(str(tmp_path / "b"), expect_variant="cae")
  assert isinstance(loaded, cae.Cae) and doc["latent_dim"] == 16 and doc["skip_kernels"] == []
  clips = jnp.asarray(np.random.default_rng(1).random((2, 3, 32, 32, 1)), jnp.float32)
  np.testing.assert_array_equal(jit_apply(loaded, loaded_vars, clips), jit_apply(model, variables, clips))
  exported = bundle.load_exported(str(tmp_path / "b"))
  np.testing.assert_allclose(np.asarray(exported(clips)), jit_apply(model, variables, clips), atol=1e-5)
  frames = (np.asarray(clips[0]) * 255).astype(np.uint8)
  scored = list(streaming.StreamingScorer(loaded, loaded_vars, (32, 32), batch_size=2).stream([frames]))
  assert [s.frame for s in scored] == [0, 1, 2]
