"""A bundle and a checkpoint written before the layout redesign still load and give the same outputs.

tests/fixtures/legacy/ was written by the code of commit 2e0124e (a latent-8 MaskedSkipUNet on 32x32 grey clips,
two training steps): `bundle/` by `--mode=export`, `workdir/checkpoints/` by `--mode=train`, and `expected.npz`
holds each one's reconstruction of a fixed clip. Parameter names and file formats must not change.
"""

import os
import shutil

import numpy as np
import tiny_run

from maskedskip_jax.deploy import bundle
from maskedskip_jax.train import state as train_state

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "legacy")
# The settings the checkpoint was trained with; the data root is not part of the experiment's identity.
_SETTINGS = {"model__latent_dim": 8, "train__num_steps": 2, "train__checkpoint_every_steps": 2, "train__batch_size": 2}


def _expected():
  with np.load(os.path.join(FIXTURES, "expected.npz"), allow_pickle=False) as f:
    return {k: f[k] for k in f.files}


def test_legacy_bundle_loads_and_reconstructs_the_same():
  expected = _expected()
  model, variables, config = bundle.load(os.path.join(FIXTURES, "bundle"))
  assert config["variant"] == "maskedskip_unet" and config["latent_dim"] == 8
  out = np.asarray(model.apply(variables, expected["clip"], train=False))
  np.testing.assert_allclose(out, expected["bundle_recon"], atol=1e-5)


def test_legacy_bundle_exported_function_runs():
  expected = _expected()
  exported = bundle.load_exported(os.path.join(FIXTURES, "bundle"))
  np.testing.assert_allclose(np.asarray(exported(expected["clip"])), expected["bundle_recon"], atol=1e-5)


def test_legacy_checkpoint_restores_and_reconstructs_the_same(tmp_path):
  expected = _expected()
  workdir = tmp_path / "work"
  shutil.copytree(os.path.join(FIXTURES, "workdir"), workdir)
  config = tiny_run.config(str(tmp_path / "data"), **_SETTINGS)
  model, variables, step = train_state.restore_variables(config, str(workdir))
  assert step == 2
  out = np.asarray(model.apply(variables, expected["clip"], train=False))
  np.testing.assert_allclose(out, expected["checkpoint_recon"], atol=1e-5)
