r"""Paper Table 2 on any config: the nine variants trained and evaluated with the same data and seed.

  python -m maskedskip_jax.ablate --config=configs/synthetic.py
  python -m maskedskip_jax.ablate --config=configs/ped2.py --config.data.root=/data/UCSDped2 \
      --workdir=runs/ablate_ped2 --variants=maskedskip_unet,unet,autoencoder
  python -m maskedskip_jax.ablate --config=configs/synthetic.py --parts=all

With `--parts` the table is instead the config's variant (or each of --variants) alone, with each listed part
of the masked-convolution family switched on by itself (PARTS: the SSMCTB block, the motion-weighted loss,
pasted synthetic anomalies, the hybrid motion score), and with all of them together; it goes to parts.md /
parts.json. A part that changes only the scoring (hybrid_score) re-scores the arm it differs from instead of
training the same model again.

Each variant trains in `<workdir>/<variant>` (default workdir: runs/ablate_<config>) from the config
with only model.variant changed (T=1 variants also get model.temporal=1) and is then evaluated on its
last checkpoint, as `--mode=train_and_eval` would. `<workdir>/ablation.md` and `ablation.json` hold one
row per evaluated variant. Re-running the command skips every variant whose eval/report.json exists
and resumes one that was interrupted; a workdir refuses a config that would change the results.
Train time is the wall-clock time of `train.loop.train` (compilation included), summed over sessions.
"""

import os
from typing import Any

import jax

from maskedskip_jax import atomic
from maskedskip_jax.eval import evaluate
from maskedskip_jax.experiments import runs
from maskedskip_jax.nn import models

TABLE_MD, TABLE_JSON = "ablation.md", "ablation.json"


def write_table(config, workdir: str, config_name: str | None = None) -> list[dict[str, Any]]:
  """Writes ablation.md / ablation.json for every variant evaluated in `workdir`; returns the rows."""
  rows = [r for r in (runs.table_row(config, workdir, v) for v in models.VARIANTS) if r is not None]
  if jax.process_index() == 0:
    title = runs.title(config, config_name)
    atomic.write_text(os.path.join(workdir, TABLE_MD), runs.markdown(rows, title))
    doc = {
      "title": title,
      "config_name": config_name,
      "dataset": config.data.name,
      "rows": rows,
      "config": runs.experiment_config(config),
    }
    atomic.write_json(os.path.join(workdir, TABLE_JSON), doc)
  return rows


def run(config, workdir: str, variants=None, config_name: str | None = None) -> dict[str, Any]:
  """Trains and evaluates `variants` (default all) in `workdir/<variant>`; returns {'rows', 'preempted'}."""
  variants = runs.parse_variants(variants)
  workdir = os.path.abspath(workdir)
  base = runs.base_config(config, workdir)
  preempted = False
  for variant in variants:
    if os.path.isfile(runs.report_path(workdir, variant)):
      print(f"ablate: {variant}: evaluated before, skipped ({runs.report_path(workdir, variant)})")
      continue
    print(f"ablate: {variant}: training and evaluating in {os.path.join(workdir, variant)}")
    c = runs.variant_config(base, variant)
    vdir = os.path.join(workdir, variant)
    if not runs.train_arm(c, vdir):
      preempted = True
      break
    evaluate.run(c, vdir)
  rows = write_table(config, workdir, config_name)
  if jax.process_index() == 0:
    print(runs.markdown(rows, runs.title(config, config_name)))
    print(f"-> {os.path.join(workdir, TABLE_MD)}")
  return {"rows": rows, "preempted": preempted}
