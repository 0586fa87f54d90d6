"""Determinism on CPU: the same config and seed give the same losses, step for step, and
byte-identical exported weights. One run is the command line's (the shared reference), the
other trains in this process from a config built in code, so the test also shows that nothing
depends on the entry point, the process or the wall clock."""

import os
import shutil

import jax
import pytest

from fault import tiny_training as tt


def _bytes(bundle_dir, name):
  with open(os.path.join(bundle_dir, name), "rb") as f:
    return f.read()


def test_same_config_and_seed_give_identical_losses_and_exported_params(dataset, reference, tmp_path):
  from maskedskip_jax.deploy import export  # pylint: disable=g-import-not-at-top
  from maskedskip_jax.train import loop  # pylint: disable=g-import-not-at-top

  if jax.device_count() != 1:
    pytest.skip("the reference ran on one CPU device; other device counts reduce in another order")
  config = tt.config(dataset)
  again = str(tmp_path / "again")
  assert loop.train(config, again)["step"] == tt.STEPS

  want = reference.losses
  assert [step for step, _ in want] == list(range(1, tt.STEPS + 1))
  assert tt.losses(again) == want  # exact float equality, every step

  first_run = str(tmp_path / "reference")
  shutil.copytree(reference.workdir, first_run)  # the shared run stays as it was
  # One call site: the StableHLO records the caller's file and line in its debug locations.
  first, second = (export.run(config, workdir, config_name="tiny") for workdir in (first_run, again))
  assert first != second
  params = _bytes(first, "params.msgpack")
  assert len(params) > 10_000 and params == _bytes(second, "params.msgpack")
  # The model description and the exported StableHLO are reproducible too.
  for name in ("model.json", "inference.stablehlo", "manifest.json"):
    assert _bytes(first, name) == _bytes(second, name), name
