"""The ablation table: every variant trained and evaluated alike, rows from the eval reports, resumable."""

import json
import os
import subprocess
import sys

import pytest
import tiny_run

from maskedskip_jax.errors import UserError
from maskedskip_jax.experiments import ablation as ablate
from maskedskip_jax.experiments import runs
from maskedskip_jax.nn import models
from maskedskip_jax.train import state as train_state

VARIANTS = ("maskedskip_unet", "unet")  # one T=3 and one T=1 variant
TINY = dict(model__latent_dim=8, train__num_steps=3, train__checkpoint_every_steps=3)
SYNTHETIC = tiny_run.SYNTHETIC_CONFIG


@pytest.fixture(scope="module")
def ablation(tmp_path_factory):
  root, config, workdir = tiny_run.ablation_setup(tmp_path_factory, **TINY)
  result = ablate.run(config, workdir, VARIANTS, config_name="tiny")
  return root, config, workdir, result


def test_each_variant_trains_and_evaluates_in_its_own_folder(ablation):
  _, config, workdir, result = ablation
  assert not result["preempted"]
  assert [r["variant"] for r in result["rows"]] == list(VARIANTS)  # in models.VARIANTS order
  for row in result["rows"]:
    report = json.loads(open(os.path.join(workdir, row["variant"], "eval", "report.json")).read())
    assert report["variant"] == row["variant"] and report["checkpoint_step"] == 3
    assert report["temporal"] == models.default_temporal(row["variant"]) == row["temporal"]
    for key in ("frame_auc_micro", "frame_auc_macro", "eer", "average_precision"):
      assert row[key] == report[key]
    assert row["train_seconds"] > 0
    c = runs.variant_config(config, row["variant"])
    model, variables, step = train_state.restore_variables(c, os.path.join(workdir, row["variant"]))
    assert step == 3 and model.variant == row["variant"]
    assert row["params"] == models.count_params(variables["params"])
  # The T=1 variant was made to see single frames; the other kept the config's T.
  assert [r["temporal"] for r in result["rows"]] == [3, 1]
  assert result["rows"][0]["params"] != result["rows"][1]["params"]


def test_table_files_hold_one_row_per_variant(ablation):
  _, _, workdir, result = ablation
  table = open(os.path.join(workdir, ablate.TABLE_MD)).read()
  lines = [line for line in table.splitlines() if line.startswith("| ")]
  assert lines[0].startswith("| variant | T | params | frame AUC micro | frame AUC macro | EER | AP |")
  assert len(lines) == 1 + len(VARIANTS)
  for line, row in zip(lines[1:], result["rows"]):
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[0] == row["variant"] and cells[2] == f"{row['params']:,}"
    assert cells[3] == f"{row['frame_auc_micro']:.4f}" and cells[6] == f"{row['average_precision']:.4f}"
  doc = json.loads(open(os.path.join(workdir, ablate.TABLE_JSON)).read())
  assert doc["rows"] == result["rows"] and doc["config_name"] == "tiny"


def test_rerun_from_the_command_line_skips_finished_variants(ablation):
  root, _, workdir, result = ablation
  reports = [os.path.join(workdir, v, "eval", "report.json") for v in VARIANTS]
  before = [os.stat(p).st_mtime_ns for p in reports]
  flags = tiny_run.overrides(root, **TINY)
  proc = subprocess.run(
    [
      sys.executable,
      "-m",
      "maskedskip_jax.ablate",
      f"--config={SYNTHETIC}",
      f"--workdir={workdir}",
      f"--variants={','.join(VARIANTS)}",
      *flags,
    ],
    cwd=tiny_run.REPO,
    env=tiny_run.env(),
    capture_output=True,
    text=True,
    timeout=120,
    check=False,
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.count("evaluated before, skipped") == len(VARIANTS), proc.stdout
  assert "training and evaluating" not in proc.stdout
  assert [os.stat(p).st_mtime_ns for p in reports] == before
  doc = json.loads(open(os.path.join(workdir, ablate.TABLE_JSON)).read())
  assert [r["variant"] for r in doc["rows"]] == list(VARIANTS)
  assert doc["rows"][0]["frame_auc_micro"] == result["rows"][0]["frame_auc_micro"]


def test_a_changed_config_is_refused_before_anything_runs(ablation):
  root, _, workdir, _ = ablation
  changed = tiny_run.synthetic_config(root, **dict(TINY, train__num_steps=5))
  with pytest.raises(UserError, match="train.num_steps=3"):
    ablate.run(changed, workdir, ("autoencoder",))
  assert not os.path.exists(os.path.join(workdir, "autoencoder"))
  # Settings that only change speed or bookkeeping are not a different experiment.
  faster = tiny_run.synthetic_config(root, **dict(TINY, train__log_every_steps=7, eval__batch_size=3))
  runs.check_same_ablation(faster, workdir)


def test_keys_added_to_the_schema_later_count_only_when_changed(ablation, tmp_path):
  root, _, _, _ = ablation
  workdir = str(tmp_path / "older")
  config = tiny_run.synthetic_config(root, **dict(TINY, eval__hybrid_beta=0.0))  # the key's default
  runs.check_same_ablation(config, workdir)
  path = os.path.join(workdir, runs.CONFIG_JSON)
  recorded = json.loads(open(path).read())
  del recorded["eval.hybrid_beta"]  # as written before the key existed
  with open(path, "w") as f:
    json.dump(recorded, f)
  runs.check_same_ablation(config, workdir)
  changed = tiny_run.synthetic_config(root, **dict(TINY, eval__hybrid_beta=1.0))
  with pytest.raises(UserError, match="eval.hybrid_beta=None"):
    runs.check_same_ablation(changed, workdir)


def test_variant_names_and_temporal():
  assert runs.parse_variants(None) == models.VARIANTS
  assert runs.parse_variants(["unet", " autoencoder", "unet"]) == ("unet", "autoencoder")
  with pytest.raises(UserError, match="--variants: unknown resnet"):
    runs.parse_variants(["unet", "resnet"])
  config = tiny_run.config("unused", model__temporal=5)
  assert runs.variant_config(config, "autoencoder").model.temporal == 1
  assert runs.variant_config(config, "one_mask").model.temporal == 5
  assert config.model.variant == "maskedskip_unet" and config.model.temporal == 5  # the original is untouched
