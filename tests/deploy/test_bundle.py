"""The model bundle: round trip, deterministic bytes, refusal of damaged bundles, StableHLO export."""

import os
import pathlib
import subprocess
import sys

import jax
from model_helpers import random_variables
import numpy as np
import pytest

from maskedskip_jax.deploy import bundle
from maskedskip_jax.errors import UserError
from maskedskip_jax.nn import models

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIG = {"variant": "maskedskip_unet", "latent_dim": 16, "channels": 1, "image_size": (32, 32)}
SHAPE = (2, 3, 32, 32, 1)


@pytest.fixture(scope="module")
def trained():
  model = models.build("maskedskip_unet", latent_dim=16, channels=1)
  x = np.random.default_rng(1).uniform(0, 1, SHAPE).astype(np.float32)
  return model, random_variables(model), x


@pytest.fixture(scope="module")
def saved(trained, tmp_path_factory):
  _, variables, _ = trained
  path = tmp_path_factory.mktemp("bundles") / "exported"
  bundle.save(str(path), variables, CONFIG, {"checkpoint_step": 7}, example_shape=SHAPE)
  return path


def copy_bundle(src, dst):
  dst.mkdir()
  for f in src.iterdir():
    (dst / f.name).write_bytes(f.read_bytes())
  return dst


def test_round_trip_gives_the_same_outputs(trained, saved):
  model, variables, x = trained
  loaded, loaded_vars, config = bundle.load(str(saved), expect_variant="maskedskip_unet")
  assert config["metadata"] == {"checkpoint_step": 7} and config["image_size"] == [32, 32]
  assert loaded == model
  for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(loaded_vars)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  apply = jax.jit(lambda m, v: m.apply(v, x), static_argnums=0)
  np.testing.assert_array_equal(np.asarray(apply(loaded, loaded_vars)), np.asarray(apply(model, variables)))


def test_same_values_give_identical_bytes(trained, tmp_path):
  _, variables, _ = trained
  # Same values built in a different key order and as numpy: still the same files.
  shuffled = jax.tree.map(
    np.asarray, {"batch_stats": variables["batch_stats"], "params": dict(reversed(list(variables["params"].items())))}
  )
  a, b = tmp_path / "a", tmp_path / "b"
  bundle.save(str(a), variables, CONFIG, {"checkpoint_step": 7})
  bundle.save(str(b), shuffled, CONFIG, {"checkpoint_step": 7})
  for name in ("params.msgpack", "model.json", "manifest.json"):
    assert (a / name).read_bytes() == (b / name).read_bytes()


@pytest.mark.parametrize(
  "damage,needle",
  [
    ("flip", "params.msgpack: sha256 does not match"),
    ("truncate", "params.msgpack: .* bytes, manifest says"),
    ("delete", "params.msgpack: missing"),
    ("config", "model.json: sha256 does not match"),
    ("manifest", "no manifest.json"),
  ],
)
def test_damaged_bundles_are_refused(saved, tmp_path, damage, needle):
  path = copy_bundle(saved, tmp_path / "b")
  params = path / "params.msgpack"
  data = bytearray(params.read_bytes())
  if damage == "flip":
    data[len(data) // 2] ^= 0x01
    params.write_bytes(bytes(data))
  elif damage == "truncate":
    params.write_bytes(bytes(data[:-100]))
  elif damage == "delete":
    params.unlink()
  elif damage == "config":
    cfg = path / "model.json"
    cfg.write_text(cfg.read_text().replace('"latent_dim": 16', '"latent_dim": 32'))
  else:
    (path / "manifest.json").unlink()
  with pytest.raises(UserError, match=needle):
    bundle.load(str(path))
  with pytest.raises(UserError):
    bundle.verify(str(path))


def test_variant_mismatch_is_refused(saved):
  with pytest.raises(UserError, match="holds a 'maskedskip_unet' model, expected 'unet'"):
    bundle.load(str(saved), expect_variant="unet")


def test_save_replaces_a_bundle_and_refuses_other_directories(trained, tmp_path):
  _, variables, _ = trained
  out = tmp_path / "out"
  bundle.save(str(out), variables, CONFIG, {"run": 1})
  bundle.save(str(out), variables, CONFIG, {"run": 2})
  assert bundle.verify(str(out))["metadata"] == {"run": 2}
  assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp or old dirs left
  precious = tmp_path / "precious"
  precious.mkdir()
  (precious / "notes.txt").write_text("keep me")
  with pytest.raises(UserError, match="not a model bundle; refusing"):
    bundle.save(str(precious), variables, CONFIG)
  assert (precious / "notes.txt").read_text() == "keep me"


def test_failed_save_leaves_nothing(trained, tmp_path):
  _, variables, _ = trained
  with pytest.raises(UserError, match="do not fit"):
    bundle.save(str(tmp_path / "out"), variables, {**CONFIG, "latent_dim": 32})
  with pytest.raises(UserError, match="unknown keys"):
    bundle.save(str(tmp_path / "out"), variables, {**CONFIG, "learning_rate": 0.1})
  assert not list(tmp_path.iterdir())


def test_exported_function_matches_and_needs_no_model_code(trained, saved):
  model, variables, x = trained
  want = np.asarray(jax.jit(model.apply)(variables, x))
  exported = bundle.load_exported(str(saved))
  assert exported.input_shape == SHAPE
  np.testing.assert_allclose(np.asarray(exported(x)), want, atol=1e-6, rtol=0)
  with pytest.raises(UserError, match="exported for input shape"):
    exported(x[:1])
  np.save(saved.parent / "x.npy", x)
  np.save(saved.parent / "want.npy", want)
  # Block the model modules: loading and running must not need them.
  script = f"""
import sys
import numpy as np
sys.modules['maskedskip_jax.nn.models'] = None
sys.modules['maskedskip_jax.nn.layers'] = None
from maskedskip_jax.deploy import bundle
d = {str(saved.parent)!r}
y = np.asarray(bundle.load_exported({str(saved)!r})(np.load(d + '/x.npy')))
assert np.abs(y - np.load(d + '/want.npy')).max() <= 1e-6
"""
  proc = subprocess.run(
    [sys.executable, "-c", script],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
    env={**os.environ, "PYTHONPATH": str(ROOT)},
  )
  assert proc.returncode == 0, proc.stderr


def test_bundle_without_export_says_so(trained, tmp_path):
  _, variables, _ = trained
  bundle.save(str(tmp_path / "b"), variables, CONFIG)
  with pytest.raises(UserError, match="has no inference.stablehlo"):
    bundle.load_exported(str(tmp_path / "b"))


def test_alarm_record_is_stored_whole_and_checked(trained, tmp_path):
  _, variables, _ = trained
  alarm = {
    "threshold": 0.25,
    "score": "reconstruction",
    "patch": 16,
    "postprocess": "gaussian:sigma=3.0,taps=25",
    "false_alarm_rate": 0.01,
    "min_event_seconds": 0.5,
    "merge_gap_seconds": 1.0,
    "calibration": {"held_out_frames": 300, "checkpoint_step": 7, "quantile_rule": "rule"},
  }
  path = bundle.save(str(tmp_path / "with"), variables, CONFIG, {"checkpoint_step": 7}, alarm=alarm)
  assert bundle.load(path)[2]["alarm"] == alarm == bundle.verify(path)["alarm"]
  assert "alarm" not in bundle.verify(bundle.save(str(tmp_path / "without"), variables, CONFIG))
  for broken in ({k: v for k, v in alarm.items() if k != "postprocess"}, dict(alarm, threshold=None)):
    with pytest.raises(UserError, match="the alarm record lacks"):
      bundle.save(str(tmp_path / "broken"), variables, CONFIG, alarm=broken)
  assert not (tmp_path / "broken").exists()
