"""evaluate.run end to end (newest checkpoint, then the same weights from a bundle); an unlabelled test set refused."""

import csv
import json
import os

import jax
import jax.numpy as jnp
from model_helpers import make_store
from model_helpers import random_variables
import pytest
import tiny_run

from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import evaluate
from maskedskip_jax.nn import models


def read_csv(path):
  with open(path) as f:
    return list(csv.DictReader(f))


def test_unlabelled_test_set_is_an_error_and_writes_nothing(tmp_path):
  model = models.build("maskedskip_unet", latent_dim=8, channels=1)
  store, *_ = make_store(with_labels=False)
  with pytest.raises(UserError, match="no frame labels"):
    evaluate.evaluate_store(
      model,
      random_variables(model),
      store,
      batch_size=5,
      out_dir=str(tmp_path / "eval"),
      pixel_metrics=False,
      progress=False,
    )
  assert os.listdir(tmp_path) == []


def test_run_evaluates_the_newest_checkpoint(tmp_path, capsys):
  from maskedskip_jax.train import checkpointing  # pylint: disable=g-import-not-at-top
  from maskedskip_jax.train import state as train_state  # pylint: disable=g-import-not-at-top

  root = tiny_run.make_dataset(str(tmp_path / "data"), num_train=1, num_test=2, frames=9)
  config = tiny_run.config(root, "")
  workdir = str(tmp_path / "work")
  model = train_state.build_model(config)
  variables = random_variables(model)
  tx = train_state.build_optimizer(config, 1)
  state = dict(
    params=variables["params"],
    batch_stats=variables["batch_stats"],
    opt_state=tx.init(variables["params"]),
    step=jnp.asarray(0, jnp.int32),
    rng=jax.random.PRNGKey(0),
  )
  mngr = checkpointing.manager(workdir, async_save=False)
  for step in (3, 6):
    checkpointing.save(mngr, step, dict(state, step=jnp.asarray(step, jnp.int32)), {"config": {}})
  mngr.close()

  report = evaluate.run(config, workdir)
  assert report["checkpoint_step"] == 6 and report["dataset"] == "generic"
  assert report["variant"] == "maskedskip_unet" and report["num_frames"] == 18
  printed = capsys.readouterr().out
  assert "| post-processing | frame AUC micro |" in printed
  best = max(report["baselines"], key=lambda n: report["baselines"][n]["frame_auc_micro"])
  # The alarm's line closes the evaluation (this test set's one training video gives up a frame to calibrate on).
  assert printed.rstrip().splitlines()[-1].startswith(f"alarm at threshold {report['alarm']['threshold']:.6g} (1% ")
  assert (
    printed.rstrip()
    .splitlines()[-2]
    .endswith(
      f"model {report['frame_auc_micro']:.3f} micro vs best baseline "
      f"{report['baselines'][best]['frame_auc_micro']:.3f} ({best})"
    )
  )
  assert len(read_csv(os.path.join(workdir, "eval", "scores.csv"))) == 18
  assert json.loads(open(os.path.join(workdir, "eval", "report.json")).read())["checkpoint_step"] == 6

  # The same weights from a bundle give the same scores.
  from maskedskip_jax.deploy import bundle  # pylint: disable=g-import-not-at-top

  model_dir = bundle.save(
    str(tmp_path / "bundle"),
    variables,
    {"variant": "maskedskip_unet", "latent_dim": 16, "channels": 1},
    {"checkpoint_step": 6},
  )
  again = evaluate.run(config, str(tmp_path / "other"), trained=bundle.load_for_config(config, model_dir))
  assert again["checkpoint_step"] == 6 and again["checkpoint"] == model_dir
  assert again["frame_auc_micro"] == report["frame_auc_micro"]
  first, second = (read_csv(os.path.join(w, "eval", "scores.csv")) for w in (workdir, str(tmp_path / "other")))
  assert [r["score"] for r in first] == [r["score"] for r in second]
