"""The parts table: each part of the masked-convolution family alone and together, scored like the variants."""

import csv
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import tiny_run

from maskedskip_jax import config as config_lib
from maskedskip_jax import validation
from maskedskip_jax.errors import UserError
from maskedskip_jax.experiments import parts as parts_ablation
from maskedskip_jax.experiments import runs
from maskedskip_jax.train import state as train_state

TINY = dict(model__latent_dim=8, train__num_steps=3, train__checkpoint_every_steps=3)
PARTS = ("motion_loss", "hybrid_score")  # one training part, one scoring part: two trainings, four rows
BASE = "maskedskip_unet"
ARMS = (BASE, f"{BASE}+motion_loss", f"{BASE}+hybrid_score", f"{BASE}+motion_loss+hybrid_score")


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
  root, config, workdir = tiny_run.ablation_setup(tmp_path_factory, **TINY)
  result = parts_ablation.run(config, workdir, PARTS, config_name="tiny")
  return root, config, workdir, result


def _scores(workdir, arm):
  with open(os.path.join(workdir, arm, "eval", "scores.csv")) as f:
    return np.array([float(r["score"]) for r in csv.DictReader(f)])


def _report(workdir, arm):
  with open(os.path.join(workdir, arm, "eval", "report.json")) as f:
    return json.load(f)


def test_rows_are_the_variant_each_part_and_all_parts(parts):
  _, _, workdir, result = parts
  assert not result["preempted"]
  assert [r["arm"] for r in result["rows"]] == list(ARMS)
  assert [r["trained_in"] for r in result["rows"]] == [BASE, ARMS[1], BASE, ARMS[1]]
  for row in result["rows"]:
    report = _report(workdir, row["arm"])
    assert row["frame_auc_micro"] == report["frame_auc_micro"] and report["checkpoint_step"] == 3
    expected_beta = 1.0 if "hybrid_score" in row["arm"] else 0.0
    assert report["frame_score"]["hybrid_beta"] == expected_beta
    assert report["checkpoint"] == os.path.join(workdir, row["trained_in"], "checkpoints", "3")


def test_a_training_part_changes_training_and_a_scoring_part_only_the_scores(parts):
  _, config, workdir, _ = parts
  base = train_state.restore_variables(config, os.path.join(workdir, BASE))[1]["params"]
  motion_config = config_lib.with_values(config, parts_ablation.PARTS["motion_loss"])
  assert motion_config.train.motion_weighting == "patch" and config.train.motion_weighting == "none"
  moved = train_state.restore_variables(motion_config, os.path.join(workdir, ARMS[1]))[1]["params"]
  pairs = zip(jax.tree.leaves(base), jax.tree.leaves(moved))
  assert any(not np.array_equal(a, b) for a, b in pairs)  # same seed and data: the weighting changed training
  # The scoring-only arms trained nothing of their own, and their scores differ from the model they re-score.
  for arm in ARMS[2:]:
    assert not os.path.exists(os.path.join(workdir, arm, "checkpoints"))
  assert not np.allclose(_scores(workdir, BASE), _scores(workdir, ARMS[2]))
  assert not np.allclose(_scores(workdir, ARMS[1]), _scores(workdir, ARMS[3]))
  # The variant alone is the same run, in the same folder, as its row in the variants table.
  assert os.path.isfile(os.path.join(workdir, BASE, runs.TIME_FILE))


def test_table_names_each_arm_and_how_it_was_trained(parts):
  _, _, workdir, result = parts
  lines = [
    line for line in open(os.path.join(workdir, parts_ablation.PARTS_MD)).read().splitlines() if line.startswith("| ")
  ]
  assert lines[0].startswith("| arm | T | params | frame AUC micro |")
  assert [line.split("|")[1].strip() for line in lines[1:]] == list(ARMS)
  assert lines[3].rstrip().endswith(f"| (as {BASE}) |")
  doc = json.loads(open(os.path.join(workdir, parts_ablation.PARTS_JSON)).read())
  assert doc["rows"] == result["rows"] and doc["parts"]["paste"] == {"train.paste_prob": 0.25}


def test_rerun_from_the_command_line_skips_finished_arms(parts):
  root, _, workdir, _ = parts
  reports = [os.path.join(workdir, arm, "eval", "report.json") for arm in ARMS]
  before = [os.stat(p).st_mtime_ns for p in reports]
  proc = subprocess.run(
    [
      sys.executable,
      "-m",
      "maskedskip_jax.ablate",
      f"--config={tiny_run.SYNTHETIC_CONFIG}",
      f"--workdir={workdir}",
      f"--parts={','.join(PARTS)}",
      *tiny_run.overrides(root, **TINY),
    ],
    cwd=tiny_run.REPO,
    env=tiny_run.env(),
    capture_output=True,
    text=True,
    timeout=120,
    check=False,
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.count("evaluated before, skipped") == len(ARMS), proc.stdout
  assert [os.stat(p).st_mtime_ns for p in reports] == before


def test_part_names_and_arms():
  assert parts_ablation.parse_parts(["all"]) == tuple(parts_ablation.PARTS)
  assert parts_ablation.parse_parts(["paste", "ssmctb"]) == ("ssmctb", "paste")  # PARTS order
  with pytest.raises(UserError, match="--parts: unknown dropout"):
    parts_ablation.parse_parts(["ssmctb", "dropout"])
  with pytest.raises(UserError, match=r"--parts: unknown \(none given\)"):
    parts_ablation.parse_parts([])
  arms = dict(parts_ablation.part_arms("unet", ("ssmctb",)))
  paper = {"model.ssmctb.placement": "penultimate", "model.ssmctb.weight": 0.1}  # SSMCTB's own placement, lambda
  assert arms == {"unet": {}, "unet+ssmctb": paper}  # one part: no "all" row
  # lambda = 1 is another setting of the same part: a row of its own, never a second SSMCTB in the "all" row.
  arms = dict(parts_ablation.part_arms("unet", ("ssmctb", "ssmctb_lambda1")))
  assert arms == {"unet": {}, "unet+ssmctb": paper, "unet+ssmctb_lambda1": {**paper, "model.ssmctb.weight": 1.0}}
  name, together = parts_ablation.part_arms("unet", ("ssmctb", "ssmctb_lambda1", "paste"))[-1]
  assert name == "unet+ssmctb+paste" and together == {**paper, "train.paste_prob": 0.25}
  # paste_mask_head already holds paste's switch: together they are that arm again, not a fourth training.
  names = [n for n, _ in parts_ablation.part_arms("unet", ("paste", "paste_mask_head"))]
  assert names == ["unet", "unet+paste", "unet+paste_mask_head"]
  assert len(parts_ablation.part_arms("unet", ("ssmctb", "paste"))) == 4
  config = tiny_run.config("unused")
  changed = config_lib.with_values(config, {"model.ssmctb.placement": "decoder", "eval.hybrid_beta": 2.0})
  assert changed.model.ssmctb.placement == "decoder" and changed.eval.hybrid_beta == 2.0
  assert config.model.ssmctb.placement == "none" and config.eval.hybrid_beta == 0.0  # the original is untouched


def test_every_arm_of_all_parts_is_a_valid_config():
  # The mask head is refused without pasting: its part, and the all-parts row, must carry paste_prob with it.
  assert parts_ablation.PARTS["paste_mask_head"] == {"train.paste_prob": 0.25, "model.mask_head": True}
  config = tiny_run.config("unused")
  every = parts_ablation.parse_parts(["all"])
  arms = parts_ablation.part_arms(BASE, every)
  assert "paste_mask_head" in every and len(arms) == len(every) + 2
  for _, overrides in arms:
    validation.validate(config_lib.with_values(config, overrides))
