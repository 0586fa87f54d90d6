"""The bad-input matrix: each mistake a user can make ends in exit code 1 and one clear line, leaving nothing."""

import os
import re

import bad_input_matrix
from bad_input_matrix import Case
from bad_input_matrix import Matrix
import jax
import numpy as np
import pytest

from fault import broken_inputs as broken
from fault import tiny_training as tt
from maskedskip_jax.errors import UserError

# The nan_loss case: a learning rate that blows the loss up, and a checkpoint every step before it does.
_NAN = dict(
  train__learning_rate=1e30,
  train__num_steps=4,
  train__checkpoint_every_steps=1,
  model__variant="unet",
  model__temporal=1,
  data__image_size=(16, 16),
)


@pytest.fixture(scope="module")
def matrix(dataset, reference, run_once):
  shared = run_once("bad_input", lambda root: bad_input_matrix.run(root, dataset, reference, _NAN))
  return Matrix(shared["root"], {name: Case(**case) for name, case in shared["cases"].items()})


CLI_CASES = [
  "missing_dataset_root",
  "empty_video_folder",
  "corrupt_tiff_mid_video",
  "truncated_jpeg_mid_video",
  "truncated_avi",
  "truncated_mp4",
  "ground_truth_length",
  "m_file_range_past_end",
  "unknown_dataset_name",
  "unknown_config_key",
  "wrong_value_type",
  "image_size_not_divisible_by_16",
  "even_temporal",
  "workdir_inside_a_file",
  "workdir_not_writable",
  "disk_full_while_checkpointing",
  "nan_loss",
  "predict_video_shorter_than_t",
  "predict_non_video_file",
  "tampered_bundle",
  "truncated_bundle",
  "pickle_as_bundle_params",
  "torch_checkpoint_missing_and_extra_keys",
  "pickle_as_torch_weights",
  "pickle_as_clips_npy",
]


@pytest.mark.parametrize("name", CLI_CASES)
def test_cli_fails_with_one_clear_line_and_leaves_nothing(matrix, name):
  if name not in matrix.cases:
    pytest.skip("torch is not installed" if "torch" in name else "no folder here that this user cannot write")
  case = matrix.cases[name]
  assert case.rc == 1, f"rc {case.rc}\n{case.stderr[-3000:]}"
  assert "Traceback" not in case.stderr, case.stderr[-3000:]
  errors = [line for line in case.stderr.splitlines() if line.startswith("error: ")]
  assert len(errors) == 1, case.stderr[-3000:]
  for fragment in case.fragments:
    assert fragment in errors[0], errors[0]
  for path in case.absent:
    assert not os.path.exists(path), path
  for folder in case.no_files:
    assert not [os.path.join(d, f) for d, _, files in os.walk(folder) for f in files], folder
  if case.unchanged:
    assert sorted(os.listdir(case.unchanged)) == case.before


def test_disk_full_leaves_no_checkpoint_that_looks_complete(matrix):
  assert matrix.cases["disk_full_while_checkpointing"].rc != 0
  finished, _ = tt.checkpoint_steps(os.path.join(matrix.root, "w_disk_full"))
  assert finished == []  # a restart could only start afresh, never load half a checkpoint


def test_nan_loss_keeps_the_last_good_checkpoint(matrix, dataset):
  from maskedskip_jax.train import state as train_state  # pylint: disable=g-import-not-at-top

  case = matrix.cases["nan_loss"]
  workdir = os.path.join(matrix.root, "w_nan")
  line = next(line for line in case.stderr.splitlines() if line.startswith("error: "))
  diverged = int(line.split("training diverged at step ")[1].split(":")[0])
  assert f"checkpoint step {diverged - 1} is intact" in line
  finished, writing = tt.checkpoint_steps(workdir)
  assert finished[-1] == diverged - 1 and not writing  # the blown-up step was never saved
  _, variables, step = train_state.restore_variables(tt.config(dataset, **_NAN), workdir)
  assert step == diverged - 1
  assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(variables))


def test_bundle_of_another_variant_is_refused(matrix, dataset):
  from maskedskip_jax.deploy import bundle  # pylint: disable=g-import-not-at-top

  model_dir = os.path.join(matrix.root, "bundle")
  config = tt.config(dataset, model__variant="unet", model__temporal=1)
  with pytest.raises(UserError, match=r"bundle: holds a 'maskedskip_unet' model, expected 'unet'") as raised:
    bundle.load_for_config(config, model_dir)
  assert "\n" not in str(raised.value)


def test_jpeg_with_a_damaged_header_is_refused(tmp_path):
  from data_pipeline import pipeline  # pylint: disable=g-import-not-at-top

  root, bad = broken.damaged_jpeg_header(str(tmp_path / "data"))
  with pytest.raises(UserError, match=re.escape(bad)):
    pipeline.load_split("generic", root, "train", image_size=(32, 32), channels=1)


def test_refused_torch_pickle_names_the_code_and_gives_no_unsafe_advice(matrix):
  if "pickle_as_torch_weights" not in matrix.cases:
    pytest.skip("torch is not installed")
  line = next(
    line for line in matrix.cases["pickle_as_torch_weights"].stderr.splitlines() if line.startswith("error: ")
  )
  assert "mkdir" in line and "weights_only" not in line, line
