"""What every ablation table shares: one folder per arm under the ablation's workdir, the experiment's config
recorded there (a rerun with other settings is refused), each arm's training time, and a table row per evaluated
arm. `ablation` (the variants table, paper Table 2) and `parts` (the parts table) are built on it.
"""

import copy
import json
import os
import time
from typing import Any

import jax
import numpy as np

from maskedskip_jax import atomic
from maskedskip_jax import config as config_lib
from maskedskip_jax import validation
from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import postprocess as postprocess_lib
from maskedskip_jax.eval import report as eval_report
from maskedskip_jax.nn import aed_mae
from maskedskip_jax.nn import models
from maskedskip_jax.train import aed_mae_step
from maskedskip_jax.train import state as train_state

CONFIG_JSON = "ablation_config.json"
TIME_FILE = "ablation_time.json"
# Keys that change where or how fast a run goes, not its numbers (model.variant is what the table varies).
_RUN_ONLY = (
  "model.variant",
  "data.cache_dir",
  "data.tfds_data_dir",
  "data.backend",
  "train.compilation_cache_dir",
  "train.prefetch",
  "train.checkpoint_every_steps",
  "train.keep_checkpoints",
  "train.log_every_steps",
  "eval.batch_size",
)


def parse_variants(names) -> tuple[str, ...]:
  """The requested variants (all nine for None/empty), in the order given, each once."""
  names = [n.strip() for n in (names or []) if n.strip()]
  unknown = [n for n in names if n not in models.VARIANTS]
  if unknown:
    raise UserError(f"--variants: unknown {', '.join(unknown)}; expected some of {','.join(models.VARIANTS)}")
  return tuple(dict.fromkeys(names)) or models.VARIANTS


def variant_config(config, variant: str):
  """`config` for `variant`: T=1 U-Net variants see single frames, the others keep the config's T (3 if it is 1)."""
  c = copy.deepcopy(config)
  c.model.variant = variant
  if variant not in models.VARIANTS:  # another family (aed_mae, cae): its config already says its T
    return c
  if models.default_temporal(variant) == 1:
    c.model.temporal = 1
  elif config.model.temporal == 1:
    c.model.temporal = models.default_temporal(variant)
  return c


def read_json(path: str) -> dict[str, Any] | None:
  if not os.path.isfile(path):
    return None
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise UserError(f"{path}: unreadable ({e}); delete it to redo that step") from None


def experiment_config(config) -> dict[str, Any]:
  """The config keys that decide an ablation's numbers, as JSON values."""
  return config_lib.to_json(config, exclude=_RUN_ONLY)


def check_same_ablation(config, workdir: str) -> None:
  """Records the experiment's config in `workdir`, or refuses one that differs from what is recorded."""
  path = os.path.join(workdir, CONFIG_JSON)
  now, saved = experiment_config(config), read_json(path)
  if saved is None:
    if jax.process_index() == 0:
      os.makedirs(workdir, exist_ok=True)
      atomic.write_json(path, now)
    return
  for key in sorted(set(now) | set(saved)):
    field = config_lib.SCHEMA.get(key)
    if key not in saved and field is not None and now[key] == json.loads(json.dumps(field.default)):
      continue  # a key added to the schema after this ablation ran, at its default: nothing changed
    if saved.get(key) != now.get(key):
      raise UserError(
        f"{path}: this ablation ran with {key}={saved.get(key)!r}, the config says "
        f"{now.get(key)!r}; use a new --workdir or the same config"
      )


def count_params(config) -> int:
  model = train_state.build_model(config)
  if train_state.is_aed_mae(config):
    shape = aed_mae_step.stacked_shape(train_state.clip_shape(config))
    return aed_mae.count_params(aed_mae.variable_shapes(model, shape)["params"])
  x = jax.ShapeDtypeStruct(train_state.clip_shape(config), np.float32)
  return models.count_params(jax.eval_shape(model.init, jax.random.key(0), x)["params"])


def report_path(workdir: str, variant: str) -> str:
  return os.path.join(workdir, variant, "eval", "report.json")


def train_arm(config, vdir: str) -> bool:
  """Trains (or resumes) one variant unless done; returns False when pre-empted. Keeps the time in TIME_FILE."""
  from maskedskip_jax.train import loop  # pylint: disable=g-import-not-at-top

  path = os.path.join(vdir, TIME_FILE)
  record = read_json(path) or {"train_seconds": 0.0, "finished": False}
  if record["finished"]:
    return True  # trained before, the evaluation is what was missing
  begin = time.perf_counter()
  result = loop.train(config, vdir)
  record = {"train_seconds": record["train_seconds"] + time.perf_counter() - begin, "finished": not result["preempted"]}
  if jax.process_index() == 0:
    atomic.write_json(path, record)
  return record["finished"]


def table_row(
  config, workdir: str, variant: str, arm: str | None = None, overrides=None, trained_in: str | None = None
) -> dict[str, Any] | None:
  """The table row of an arm (default: the variant alone) whose evaluation is done, else None."""
  arm = arm or variant
  report = read_json(report_path(workdir, arm))
  if report is None:
    return None
  c = config_lib.with_values(variant_config(config, variant), overrides or {})
  timing = read_json(os.path.join(workdir, trained_in or arm, TIME_FILE)) or {}
  extra = {} if overrides is None else {"arm": arm, "overrides": overrides, "trained_in": trained_in or arm}
  return {
    "variant": variant,
    **extra,
    "temporal": c.model.temporal,
    "params": count_params(c),
    **{k: report.get(k) for k in eval_report.HEADLINE},
    "train_seconds": timing.get("train_seconds"),
    "checkpoint_step": report.get("checkpoint_step"),
    "postprocess": report.get("postprocess"),
    "num_frames": report.get("num_frames"),
    "report": os.path.abspath(report_path(workdir, arm)),
  }


def markdown(rows: list[dict[str, Any]], title: str = "", first: str = "variant") -> str:
  """The table; `first` = 'variant', or 'arm' for the parts table (its rows name the parts switched on)."""

  def seconds(r):
    if r.get("trained_in", r.get("arm")) != r.get("arm"):
      return f"(as {r['trained_in']})"
    return "n/a" if r["train_seconds"] is None else f"{r['train_seconds']:.0f}"

  table = eval_report.headline_markdown(
    rows,
    before=[
      (first, lambda r: str(r[first])),
      ("T", lambda r: str(r["temporal"])),
      ("params", lambda r: f"{r['params']:,}"),
    ],
    after=[("train time (s)", seconds)],
  )
  lines = ([title, ""] if title else []) + [table]
  return "\n".join(lines) + "\n"


def title(config, config_name: str | None) -> str:
  t = config.train
  steps = f"{t.num_steps} steps" if t.num_steps > 0 else f"{t.epochs} epochs"
  method = postprocess_lib.describe(postprocess_lib.parse_chain(config.eval.postprocess))
  return (
    f"Ablation on {config.data.name} (config {config_name or '?'}): {steps}, batch {t.batch_size}, "
    f"seed {t.seed}, {tuple(config.data.image_size)} x {config.data.channels} channel(s), latent "
    f"{config.model.latent_dim}; each variant's last checkpoint, frame scores post-processed with "
    f"'{method}'."
  )


def base_config(config, workdir: str):
  from maskedskip_jax.train import inputs as train_data  # pylint: disable=g-import-not-at-top

  validation.validate(config)
  check_same_ablation(config, workdir)
  base = copy.deepcopy(config)
  # The tables compare networks, so every row is scored by the reconstruction alone (the paper's score); a
  # config's hybrid score is the parts table's hybrid_score row.
  base.eval.hybrid_beta = 0.0
  if base.data.name == "synthetic" and not base.data.root:
    base.data.root = train_data.dataset_root(config, workdir)  # generated once, shared by every arm
  return base
