"""The parts table: one variant with each part of the masked-convolution family on alone, then all together.

  python -m maskedskip_jax.ablate --config=configs/synthetic.py --parts=all

Runs share the variants table's workdir, bookkeeping and resume rules: the variant alone is the same run (and folder) as
its row in the variants table, and a part that changes only the scoring re-scores the model it differs from.
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

PARTS_MD, PARTS_JSON = "parts.md", "parts.json"
# Each part at the setting its paper uses; where the paper gives none, the setting says so.
PARTS = {
  # SSMCTB paper Sec. 4.3: instead of the host's penultimate conv layer, k'=1, d=1, Huber delta=1. The seed text lost
  # Eq. 8's lambda: 0.1 (SSPCAB's, the stated default) and 1 are both reported.
  "ssmctb": {"model.ssmctb.placement": "penultimate", "model.ssmctb.weight": 0.1},
  "ssmctb_lambda1": {"model.ssmctb.placement": "penultimate", "model.ssmctb.weight": 1.0},
  "motion_loss": {"train.motion_weighting": "patch"},  # AED-MAE Eq. 1-2: token (patch) level weights
  "paste": {"train.paste_prob": 0.25},  # AED-MAE Sec. 4: a frame is augmented with probability 0.25
  # The same pasting, plus issue 9's optional mask output channel trained on the pasted maps.
  "paste_mask_head": {"train.paste_prob": 0.25, "model.mask_head": True},
  # That model scored by reconstruction + its predicted map (weights 1 and 1; no published value): re-scored,
  # not retrained. Every mask-head row's report also holds the map's AUCs alone (`mask_head_score`).
  "mask_head_score": {"train.paste_prob": 0.25, "model.mask_head": True, "eval.mask_weight": 1.0},
  "hybrid_score": {"eval.hybrid_beta": 1.0},  # alpha = beta = 1: the hybrid-score paper publishes no values
}


def parse_parts(names) -> tuple[str, ...]:
  """The requested parts, in PARTS order; 'all' means every one."""
  names = [n.strip() for n in (names or []) if n.strip()]
  if names == ["all"]:
    return tuple(PARTS)
  unknown = [n for n in names if n not in PARTS]
  if unknown or not names:
    raise UserError(
      f"--parts: unknown {', '.join(unknown) or '(none given)'}; expected 'all' or some of {','.join(PARTS)}"
    )
  return tuple(p for p in PARTS if p in names)


def part_arms(variant: str, parts) -> list[tuple[str, dict[str, Any]]]:
  """(name, overrides) of the rows: the variant alone, each part on its own, and all parts together."""
  arms = [(variant, {})] + [(f"{variant}+{p}", dict(PARTS[p])) for p in parts]
  # A key several parts set keeps its first setting: ssmctb_lambda1 is an alternative to ssmctb, not one more part.
  together, joined = {}, []
  for p in parts:
    new = {k: v for k, v in PARTS[p].items() if k not in together}
    if new:
      together.update(new)
      joined.append(p)
  # A part may contain another (paste_mask_head holds paste's switch): never train the same arm twice.
  if len(parts) > 1 and all(together != overrides for _, overrides in arms):
    arms.append(("+".join((variant, *joined)), together))
  return arms


def _training_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
  return {k: v for k, v in overrides.items() if not k.startswith("eval.")}


def write_parts_table(config, workdir: str, arms, config_name: str | None = None) -> list[dict[str, Any]]:
  """Writes parts.md / parts.json for the evaluated `arms` ((variant, name, overrides, trained_in) each)."""
  rows = [r for r in (runs.table_row(config, workdir, v, name, o, t) for v, name, o, t in arms) if r is not None]
  if jax.process_index() == 0:
    title = runs.title(config, config_name).replace("Ablation on", "Parts ablation on", 1)
    title += (
      " Parts: " + "; ".join(f"{p} = {', '.join(f'{k}={v}' for k, v in o.items())}" for p, o in PARTS.items()) + "."
    )
    atomic.write_text(os.path.join(workdir, PARTS_MD), runs.markdown(rows, title, first="arm"))
    doc = {
      "title": title,
      "config_name": config_name,
      "dataset": config.data.name,
      "rows": rows,
      "parts": PARTS,
      "config": runs.experiment_config(config),
    }
    atomic.write_json(os.path.join(workdir, PARTS_JSON), doc)
  return rows


def run(config, workdir: str, parts, variants=None, config_name: str | None = None) -> dict[str, Any]:
  """Each of `parts` on its own and all together on the config's variant (or each of `variants`).

  Rows live in `workdir/<variant>+<part>[+<part>...]`; the variant alone is `workdir/<variant>`, the same
  run as in the variants table. An arm that differs from an earlier one only in eval.* keys is scored from
  that arm's checkpoints. Returns {'rows', 'preempted'}.
  """
  parts = parse_parts(parts)
  variants = runs.parse_variants(variants) if variants else (config.model.variant,)
  workdir = os.path.abspath(workdir)
  base = runs.base_config(config, workdir)
  arms, preempted = [], False
  for variant in variants:
    trained = {}  # training overrides (as a sorted tuple) -> the arm that trained them
    for name, overrides in part_arms(variant, parts):
      key = tuple(sorted(_training_overrides(overrides).items()))
      trained_in = trained.setdefault(key, name)
      arms.append((variant, name, overrides, trained_in))
  for variant, name, overrides, trained_in in arms:
    if os.path.isfile(runs.report_path(workdir, name)):
      print(f"ablate: {name}: evaluated before, skipped ({runs.report_path(workdir, name)})")
      continue
    c = config_lib.with_values(runs.variant_config(base, variant), overrides)
    validation.validate(c)
    train_dir = os.path.join(workdir, trained_in)
    if trained_in == name:
      print(f"ablate: {name}: training and evaluating in {train_dir}")
      if not runs.train_arm(c, train_dir):
        preempted = True
        break
    else:
      print(f"ablate: {name}: scoring the model of {trained_in} with {overrides}")
      if not (runs.read_json(os.path.join(train_dir, runs.TIME_FILE)) or {}).get("finished"):
        raise UserError(f"{train_dir}: arm {trained_in} has not finished training; rerun to train it first")
    evaluate.run(c, train_dir, out_dir=os.path.join(workdir, name, "eval"))
  rows = write_parts_table(config, workdir, arms, config_name)
  if jax.process_index() == 0:
    print(runs.markdown(rows, first="arm"))
    print(f"-> {os.path.join(workdir, PARTS_MD)}")
  return {"rows": rows, "preempted": preempted}
