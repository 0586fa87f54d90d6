"""--mode=export: the newest checkpoint as a model bundle, deterministic, never half-written."""

import json
import os
import shutil

import jax
import jax.numpy as jnp
from model_helpers import centre_clips
from model_helpers import random_variables
import numpy as np
import pytest
import tiny_run

from maskedskip_jax import config as config_lib
from maskedskip_jax.deploy import bundle
from maskedskip_jax.deploy import export
from maskedskip_jax.deploy import stablehlo_export
from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import evaluate
from maskedskip_jax.eval import postprocess
from maskedskip_jax.eval import threshold
from maskedskip_jax.nn import scoring
from maskedskip_jax.train import checkpointing
from maskedskip_jax.train import inputs as train_inputs
from maskedskip_jax.train import state as train_state

STEPS = (3, 6)


def _save_checkpoints(config, workdir):
  """Checkpoints at STEPS with different random weights (batch statistics too); returns the newest's variables."""
  model = train_state.build_model(config)
  tx = train_state.build_optimizer(config, 1)
  mngr = checkpointing.manager(workdir, async_save=False)
  for seed, step in enumerate(STEPS):
    variables = random_variables(model, seed)
    state = dict(
      params=variables["params"],
      batch_stats=variables["batch_stats"],
      opt_state=tx.init(variables["params"]),
      step=jnp.asarray(step, jnp.int32),
      rng=jax.random.PRNGKey(0),
    )
    checkpointing.save(mngr, step, state, {"config": config_lib.to_json(config)})
  mngr.close()
  return variables


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_dataset):
  """A workdir with two checkpoints, exported once; the dataset's training videos give the alarm its footage."""
  config = tiny_run.config(tiny_dataset, "", model__latent_dim=8)
  workdir = str(tmp_path_factory.mktemp("export") / "work")
  newest = _save_checkpoints(config, workdir)
  path = export.run(config, workdir, config_name="tiny")
  return config, workdir, newest, path


def _files(path):
  out = {}
  for name in sorted(os.listdir(path)):
    with open(os.path.join(path, name), "rb") as f:
      out[name] = f.read()
  return out


def test_bundle_reproduces_the_checkpoint_model(run):
  config, workdir, newest, path = run
  assert path == os.path.join(os.path.abspath(workdir), "export")
  model, variables, step = train_state.restore_variables(config, workdir)
  assert step == STEPS[-1]
  x = np.random.default_rng(3).uniform(0, 1, (2, 3, 32, 32, 1)).astype(np.float32)
  want = np.asarray(jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, x))

  loaded, loaded_vars, model_json = bundle.load(path, expect_variant="maskedskip_unet")
  got = np.asarray(jax.jit(lambda v, x: loaded.apply(v, x, train=False))(loaded_vars, x))
  np.testing.assert_array_equal(got, want)
  # The newest checkpoint, not an older one: its weights are what the bundle holds.
  for a, b in zip(jax.tree.leaves(newest), jax.tree.leaves(loaded_vars)):
    np.testing.assert_array_equal(a, b)

  assert model_json["temporal"] == 3 and model_json["channels"] == 1 and model_json["image_size"] == [32, 32]
  meta = model_json["metadata"]
  assert meta["checkpoint_step"] == STEPS[-1] and meta["dataset"] == "generic" and meta["config_name"] == "tiny"
  assert meta["training_config"]["model.latent_dim"] == 8
  assert "data.root" not in meta["training_config"]  # no local paths in a bundle meant for sharing

  # The StableHLO function: batch 1 by default, and the same reconstruction without the model code.
  exported = bundle.load_exported(path)
  assert exported.input_shape == (1, 3, 32, 32, 1)
  np.testing.assert_allclose(np.asarray(exported(x[:1])), want[:1], rtol=1e-5, atol=1e-5)


def test_exporting_again_gives_identical_bytes(run, tmp_path):
  config, workdir, _, path = run
  first = _files(path)
  # Another workdir, restored from its own copy of the checkpoints: nothing depends on where or when.
  other = str(tmp_path / "work")
  shutil.copytree(checkpointing.checkpoint_dir(workdir), checkpointing.checkpoint_dir(other))
  exports = [_files(export.run(config, w, config_name="tiny")) for w in (workdir, other)]
  assert first[bundle.PARAMS_FILE] == exports[0][bundle.PARAMS_FILE] == exports[1][bundle.PARAMS_FILE]
  assert first[bundle.CONFIG_FILE] == exports[0][bundle.CONFIG_FILE] == exports[1][bundle.CONFIG_FILE]
  # The StableHLO records its caller's source location, so whole bundles match when exported by the same code.
  assert exports[0] == exports[1] and bundle.EXPORT_FILE in exports[0]
  assert json.loads(first[bundle.CONFIG_FILE])["alarm"]["threshold"] is not None


def test_batch_size_argument_sets_the_exported_shape(run, tmp_path):
  config, workdir, _, _ = run
  other = str(tmp_path / "work")
  shutil.copytree(checkpointing.checkpoint_dir(workdir), checkpointing.checkpoint_dir(other))
  path = export.run(config, other, batch_size=4, config_name="tiny")
  model_json = json.loads(open(os.path.join(path, bundle.CONFIG_FILE)).read())
  assert model_json["export"]["input_shape"] == [4, 3, 32, 32, 1]
  assert bundle.load_exported(path).input_shape == (4, 3, 32, 32, 1)
  with pytest.raises(UserError, match="export batch size"):
    export.run(config, workdir, batch_size=0)


def test_failed_export_keeps_the_previous_one(run, monkeypatch):
  config, workdir, _, path = run
  before = _files(path)
  parent = os.listdir(workdir)

  def broken(*args, **kwargs):
    raise RuntimeError("lowering failed")

  monkeypatch.setattr(stablehlo_export, "serialize", broken)
  with pytest.raises(RuntimeError, match="lowering failed"):
    export.run(config, workdir)
  assert _files(path) == before
  assert sorted(os.listdir(workdir)) == sorted(parent)  # no temporary folder left behind
  bundle.verify(path)


def test_no_checkpoint_is_a_user_error(tmp_path):
  config = tiny_run.config("unused", "", model__latent_dim=8)
  with pytest.raises(UserError, match="no checkpoints here"):
    export.run(config, str(tmp_path / "empty"))
  os.makedirs(checkpointing.checkpoint_dir(str(tmp_path / "empty")))
  with pytest.raises(UserError, match="no finished checkpoint"):
    export.run(config, str(tmp_path / "empty"))
  assert not os.path.exists(export.export_dir(str(tmp_path / "empty")))


def test_command_line_without_checkpoint_is_one_line(tmp_path):
  proc = tiny_run.run_main(
    str(tmp_path / "work"), tiny_run.overrides(str(tmp_path / "data"), ""), mode="export", timeout=120
  )
  assert proc.returncode == 1, proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
  assert len(errors) == 1 and "no checkpoints here" in errors[0], proc.stderr[-2000:]


def test_bundle_holds_the_alarm_threshold_of_its_checkpoint(run, tmp_path, capsys):
  config, workdir, newest, path = run
  alarm = bundle.verify(path)["alarm"]
  assert set(threshold.RECORD_KEYS) <= set(alarm)
  assert alarm["score"] == "reconstruction" and alarm["patch"] == 16 and alarm["false_alarm_rate"] == 0.01
  assert alarm["postprocess"] == "gaussian:sigma=3.0,taps=25"
  assert (alarm["min_event_seconds"], alarm["merge_gap_seconds"]) == (0.5, 1.0)
  c = alarm["calibration"]
  assert c["checkpoint_step"] == STEPS[-1] and c["share"] == 0.1 and c["videos"] == ["v1"]
  assert c["held_out_frames"] == 20 and "fewer than 1 / false_alarm_rate = 100" in c["warning"]
  # By hand: the newest weights' plain forward on the held-out video, smoothed; with 20 frames at 1 %, the largest.
  model = train_state.build_model(config)
  frames = train_inputs.load_split(config, workdir, "train", all_processes=False).video_frames(1)
  clips = centre_clips([frames], model.temporal)
  recon = jax.jit(lambda v, x: model.apply(v, x, train=False))(newest, clips)
  scores = np.asarray(scoring.frame_scores(scoring.score_maps(clips[:, 1], recon), 16), np.float64)
  assert alarm["threshold"] == pytest.approx(postprocess.postprocess([scores], "gaussian:sigma=3")[0].max(), rel=1e-5)

  # Evaluation calibrates the same checkpoint the same way: its report carries the same record.
  other = str(tmp_path / "work")
  shutil.copytree(checkpointing.checkpoint_dir(workdir), checkpointing.checkpoint_dir(other))
  report = evaluate.run(config, other)
  assert {k: v for k, v in report["alarm"].items() if k != "test"} == alarm
  assert capsys.readouterr().out.rstrip().splitlines()[-1].startswith(f"alarm at threshold {alarm['threshold']:.6g}")


def test_no_held_out_share_means_no_alarm(tmp_path, tiny_dataset, capsys):
  config = tiny_run.config(tiny_dataset, "", model__latent_dim=8, data__holdout_share=0.0)
  workdir = str(tmp_path / "work")
  _save_checkpoints(config, workdir)
  path = export.run(config, workdir, config_name="tiny")
  assert "alarm" not in bundle.verify(path)
  said = [line for line in capsys.readouterr().out.splitlines() if "alarm" in line]
  assert said == [
    "export: no alarm threshold in the bundle: data.holdout_share is 0, so no normal footage was held out"
  ]
