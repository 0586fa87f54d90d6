"""AED-MAE's Table 2 rows: cumulative, in the paper's order, the last row the config itself."""

import json
import os
import subprocess
import sys

import pytest
import tiny_run

from maskedskip_jax import config as config_lib
from maskedskip_jax.errors import UserError
from maskedskip_jax.experiments import aed_mae_ablation
from maskedskip_jax.experiments import runs


def _config(**values):
  return config_lib.with_values(
    config_lib.default_config(), {"model.variant": "aed_mae", "model.temporal": 7, "train.paste_prob": 0.25, **values}
  )


def test_rows_add_one_component_at_a_time_in_the_papers_order():
  rows = aed_mae_ablation.rows(_config())
  names = [n for n, _ in rows]
  assert names == [
    "masked_ae",
    "+motion_weights",
    "+self_distillation",
    "+synthetic_anomalies",
    "+anomaly_maps",
    "+classifier",
  ]
  first, last = rows[0][1], rows[-1][1]
  assert first == {
    "model.aed_mae.motion_weights": False,
    "train.stage2_fraction": 0.0,
    "train.paste_prob": 0.0,
    "model.aed_mae.anomaly_maps": False,
    "model.aed_mae.classifier": False,
  }
  flat = config_lib.to_json(_config())
  assert all(flat[k] == v for k, v in last.items())  # the full method is the config as given
  assert rows[2][1]["train.stage2_fraction"] == pytest.approx(40 / 140) and rows[2][1]["train.paste_prob"] == 0.0
  assert rows[3][1]["train.paste_prob"] == 0.25 and rows[3][1]["model.aed_mae.anomaly_maps"] is False


@pytest.mark.parametrize(
  "key, off", [("train.paste_prob", 0.0), ("model.aed_mae.classifier", False), ("train.stage2_fraction", 0.0)]
)
def test_a_config_without_a_component_cannot_be_the_full_row(key, off):
  with pytest.raises(UserError, match=f"config key {key}"):
    aed_mae_ablation.rows(_config(**{key: off}))


@pytest.mark.slow
def test_ablate_trains_and_evaluates_every_row_through_main(tmp_path):
  """The whole tool on a tiny network: six rows trained and scored by Eq. 6, one table; a rerun trains nothing."""
  root = tiny_run.make_dataset(str(tmp_path / "data"), num_train=2, num_test=1, frames=12)
  flags = tiny_run.overrides(
    root,
    **tiny_run.AED_MAE,
    train__num_steps=2,
    train__stage2_fraction=0.5,
    train__paste_prob=0.5,
    eval__aed_mae__box=3,
    eval__aed_mae__taps=3,
    eval__baselines="frame_diff",
  )
  config = os.path.join(tiny_run.REPO, "configs", "synthetic.py")
  workdir = tmp_path / "ab"
  command = [sys.executable, "-m", "maskedskip_jax.ablate", f"--config={config}", f"--workdir={workdir}", *flags]
  run = dict(cwd=tiny_run.REPO, env=tiny_run.env(), capture_output=True, text=True, check=False)
  first = subprocess.run(command, timeout=1500, **run)
  assert first.returncode == 0, first.stderr[-3000:]
  with open(tmp_path / "ab" / aed_mae_ablation.TABLE_JSON) as f:
    table = json.load(f)
  assert [r["arm"] for r in table["rows"]] == [aed_mae_ablation.row_name(k) for k in range(6)]
  for name in ("masked_ae", "+classifier"):
    with open(tmp_path / "ab" / name / "eval" / "report.json") as f:
      report = json.load(f)
    assert report["frame_score"]["kind"] == "aed_mae"
  assert report["frame_score"]["gamma"] == 0.3 and report["frame_score"]["beta"] == 0.3
  with open(tmp_path / "ab" / "masked_ae" / "eval" / "report.json") as f:
    first_row = json.load(f)["frame_score"]
  assert (first_row["beta"], first_row["gamma"], first_row["anomaly_maps"]) == (0.0, 0.0, False)
  again = subprocess.run(command, timeout=600, **run)
  assert again.returncode == 0 and again.stdout.count("evaluated before, skipped") == 6


def test_a_row_of_the_table_counts_the_aed_mae_network():
  config = _config(**{"model.aed_mae.embed_dim": 16, "model.aed_mae.decoder_dim": 16, "data.image_size": (32, 32)})
  assert runs.variant_config(config, "aed_mae").model.temporal == 7
  smaller = config_lib.with_values(config, {"model.aed_mae.student_depth": 2})
  assert 0 < runs.count_params(config) < runs.count_params(smaller)
