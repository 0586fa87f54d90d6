"""The config schema and the shipped configs."""

import glob
import importlib.util
import os

import pytest
import tiny_run

from maskedskip_jax import config as config_lib
from maskedskip_jax import validation
from maskedskip_jax.errors import UserError

CONFIGS = sorted(glob.glob(os.path.join(tiny_run.REPO, "configs", "*.py")))
REQUIRED = (
  "data.name",
  "data.root",
  "data.image_size",
  "data.channels",
  "model.variant",
  "model.latent_dim",
  "model.temporal",
  "model.masked_kernels",
  "train.batch_size",
  "train.epochs",
  "train.num_steps",
  "train.learning_rate",
  "train.seed",
  "train.checkpoint_every_steps",
  "train.compute_dtype",
  "eval.postprocess",
)


def _load(path):
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_the_shipped_configs_exist():
  names = {os.path.basename(p)[:-3] for p in CONFIGS}
  assert {"synthetic", "ped2", "ped1", "avenue", "shanghaitech", "ped2_cpu"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.basename(p))
def test_every_config_has_the_required_keys_and_validates(path):
  module = _load(path)
  config = module.get_config()
  flat = config_lib.flatten(config)
  assert set(REQUIRED) <= set(flat)
  name = os.path.basename(path)
  assert f"python -m maskedskip_jax.main --config=configs/{name}" in module.__doc__
  if not flat["data.root"] and flat["data.name"] != "synthetic":
    config.data.root = "/somewhere"  # real datasets take their folder on the command line
  validation.validate(config)


@pytest.mark.parametrize(
  "path", [p for p in CONFIGS if os.path.basename(p) in ("ped1.py", "ped2.py", "avenue.py", "shanghaitech.py")]
)
def test_benchmark_configs_use_the_reference_hyperparameters(path):
  c = _load(path).get_config()
  assert (c.model.latent_dim, tuple(c.data.image_size), c.data.channels, c.model.temporal) == (512, (256, 256), 3, 3)
  assert (c.train.learning_rate, c.train.batch_size, c.train.epochs, c.train.num_steps) == (1e-2, 16, 10, 0)


def test_the_aed_mae_cpu_recipe_is_the_paper_config_but_for_token_size_batch_and_epochs():
  """BENCHMARKS' AED-MAE CPU rows were run as aed_mae_ped2.py plus these overrides: the CPU config must hold them."""
  paper = config_lib.flatten(_load(os.path.join(tiny_run.REPO, "configs", "aed_mae_ped2.py")).get_config())
  cpu = config_lib.flatten(_load(os.path.join(tiny_run.REPO, "configs", "aed_mae_ped2_cpu.py")).get_config())
  changed = {k: cpu[k] for k in cpu if cpu[k] != paper.get(k)}
  assert changed == {
    "model.aed_mae.patch": 8,
    "train.batch_size": 20,
    "train.epochs": 30,
    "train.stage2_fraction": 0.25,
  }


def _bad(key, value):
  config = config_lib.default_config()
  group, leaf = key.rsplit(".", 1)
  node = config
  for part in group.split("."):
    node = node[part]
  with node.ignore_type():
    node[leaf] = value
  with pytest.raises(UserError) as e:
    validation.validate(config)
  message = str(e.value)
  assert "\n" not in message and key in message
  return message


def test_unknown_key_is_named_with_a_suggestion():
  config = config_lib.default_config()
  config.train.batch_sz = 8
  with pytest.raises(UserError, match=r"^unknown config key train.batch_sz; did you mean train.batch_size\?$"):
    validation.validate(config)


@pytest.mark.parametrize(
  "key, value, expected",
  [
    ("train.batch_size", "8", "expected int"),
    ("train.batch_size", 0, ">= 1"),
    ("train.learning_rate", "fast", "expected float"),
    ("model.centre_only", 1, "expected bool"),
    ("data.image_size", (30, 32), "multiples of 16"),
    ("data.image_size", (64,), "(height, width)"),
    ("model.temporal", 2, "odd"),
    ("model.variant", "resnet", "maskedskip_unet"),
    ("model.masked_kernels", "thawed", "'frozen'"),
    ("train.compute_dtype", "float16", "'bfloat16'"),
    ("data.channels", 2, "1, 3"),
    ("data.name", "kitti", "ucsd_ped2"),
    ("eval.postprocess", "smooth", "post-processing chain"),
    ("model.latent_dim", 12, "multiple of 8"),
    ("eval.gaussian_sigma", 0.0, "eval.gaussian_sigma"),
    ("eval.write_videos", "yes", "expected bool"),
    ("eval.region_thresholds", 1, "eval.region_thresholds"),
  ],
)
def test_bad_values_name_the_key_and_what_was_expected(key, value, expected):
  assert expected in _bad(key, value)


def test_every_eval_setting_is_a_config_key():
  from maskedskip_jax.eval import report as eval_report  # here: the evaluation stack is heavy to import

  config = config_lib.default_config()
  config.eval.write_videos, config.eval.pixel_size, config.eval.gaussian_sigma = True, 32, 2.5
  validation.validate(config)
  got = eval_report.settings(config)
  assert (got["write_videos"], got["pixel_size"], got["gaussian_sigma"]) == (True, 32, 2.5)
  assert {f"eval.{k}" for k in got} <= set(config_lib.SCHEMA)


def test_integers_are_accepted_for_floats():
  config = config_lib.default_config()
  config.train.learning_rate = 1
  validation.validate(config)


def test_one_image_side_means_a_square():
  config = config_lib.with_values(config_lib.default_config(), {"data.image_size": 128})
  assert config.data.image_size == (128, 128)
  validation.validate(config)
  # The command line parses --config.data.image_size=96 as (96,).
  assert config_lib.with_values(config, {"data.image_size": (96,)}).data.image_size == (96, 96)


def test_missing_key_is_named():
  config = config_lib.default_config()
  del config.eval["postprocess"]
  with pytest.raises(UserError, match="eval.postprocess is missing"):
    validation.validate(config)


def test_single_frame_variants_need_temporal_1():
  config = config_lib.default_config()
  config.model.variant = "unet"
  with pytest.raises(UserError, match="model.temporal"):
    validation.validate(config)
  config.model.temporal = 1
  validation.validate(config)


def test_real_datasets_need_a_root():
  config = config_lib.default_config()
  config.data.name = "ucsd_ped2"
  with pytest.raises(UserError, match="data.root"):
    validation.validate(config)


def test_no_training_length_is_refused():
  config = config_lib.default_config()
  config.train.epochs = 0
  with pytest.raises(UserError, match="train.epochs"):
    validation.validate(config)
