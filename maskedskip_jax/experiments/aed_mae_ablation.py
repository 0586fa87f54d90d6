"""AED-MAE's own ablation, the rows of its paper's Table 2: a vanilla masked AE, then each novel component added
in the paper's order (motion weights, self-distillation, synthetic anomalies, anomaly maps, the classifier).

Each row trains and evaluates in `workdir/<row>`; the last row is the config as given (the full method). Rows off
a component switch it where it lives: the model.aed_mae switches for the losses and score terms, train.paste_prob
for the synthetic data, train.stage2_fraction (0 = no student) for self-distillation. The score follows: its
teacher-student term needs a student, its classifier term a trained classifier, its map channel trained maps.
"""

import os
from typing import Any

import jax

from maskedskip_jax import atomic
from maskedskip_jax import config as config_lib
from maskedskip_jax import validation
from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import evaluate
from maskedskip_jax.experiments import runs

TABLE_MD, TABLE_JSON = "aed_mae_table2.md", "aed_mae_table2.json"
# (row name, the keys that component sets when it is on: the full config's value, or the given one).
COMPONENTS = (
  ("motion weights", ("model.aed_mae.motion_weights",)),
  ("self-distillation", ("train.stage2_fraction",)),
  ("synthetic anomalies", ("train.paste_prob",)),
  ("anomaly maps", ("model.aed_mae.anomaly_maps",)),
  ("classifier", ("model.aed_mae.classifier",)),
)
_OFF = {
  "model.aed_mae.motion_weights": False,
  "train.stage2_fraction": 0.0,
  "train.paste_prob": 0.0,
  "model.aed_mae.anomaly_maps": False,
  "model.aed_mae.classifier": False,
}


def row_name(k: int) -> str:
  return "masked_ae" if k == 0 else "+" + COMPONENTS[k - 1][0].replace(" ", "_").replace("-", "_")


def rows(config) -> list[tuple[str, dict[str, Any]]]:
  """(name, overrides) of each row: row k has the first k components on, at the config's values."""
  flat = config_lib.to_json(config)
  for key, off in _OFF.items():
    if flat[key] == off:
      raise UserError(f"config key {key}: the full method needs it on, got {off!r} (Table 2's last row is the config)")
  out = []
  for k in range(len(COMPONENTS) + 1):
    overrides = dict(_OFF)
    for _, keys in COMPONENTS[:k]:
      overrides.update({key: flat[key] for key in keys})
    out.append((row_name(k), overrides))
  return out


def run(config, workdir: str, config_name: str | None = None) -> dict[str, Any]:
  """Trains and evaluates every row (finished ones are skipped); writes aed_mae_table2.md/.json; returns
  {'rows', 'preempted'}."""
  workdir = os.path.abspath(workdir)
  base = runs.base_config(config, workdir)
  table, preempted = [], False
  for name, overrides in rows(base):
    c = config_lib.with_values(base, overrides)
    validation.validate(c)
    if not os.path.isfile(runs.report_path(workdir, name)):
      print(f"ablate: {name}: training and evaluating in {os.path.join(workdir, name)}")
      if not runs.train_arm(c, os.path.join(workdir, name)):
        preempted = True
        break
      evaluate.run(c, os.path.join(workdir, name))
    else:
      print(f"ablate: {name}: evaluated before, skipped ({runs.report_path(workdir, name)})")
  for name, overrides in rows(base):
    row = runs.table_row(base, workdir, base.model.variant, name, overrides)
    if row is not None:
      table.append(row)
  if jax.process_index() == 0:
    title = runs.title(config, config_name).replace("Ablation on", "AED-MAE's Table 2 on", 1)
    atomic.write_text(os.path.join(workdir, TABLE_MD), runs.markdown(table, title, first="arm"))
    doc = {"title": title, "config_name": config_name, "rows": table, "config": runs.experiment_config(config)}
    atomic.write_json(os.path.join(workdir, TABLE_JSON), doc)
    print(runs.markdown(table, first="arm"))
    print(f"-> {os.path.join(workdir, TABLE_MD)}")
  return {"rows": table, "preempted": preempted}
