"""AED-MAE's Table 2 rows: cumulative, in the paper's order, the last row the config itself."""

import pytest

from maskedskip_jax import config as config_lib
from maskedskip_jax.errors import UserError
from maskedskip_jax.experiments import aed_mae_ablation


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
