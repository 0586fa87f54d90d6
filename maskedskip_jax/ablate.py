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
Train time is the wall-clock time of `train.train` (compilation included), summed over sessions.
"""

import copy
import json
import os
import sys
import time
from typing import Any

from absl import app
from absl import flags
from absl import logging
import jax
import numpy as np

from maskedskip_jax import app as app_lib
from maskedskip_jax import config_check
from maskedskip_jax import main as main_lib
from maskedskip_jax import models
from maskedskip_jax import postprocess as postprocess_lib
from maskedskip_jax.errors import UserError

TABLE_MD, TABLE_JSON, CONFIG_JSON = "ablation.md", "ablation.json", "ablation_config.json"
TIME_FILE = "ablation_time.json"
_HEADLINE = ("frame_auc_micro", "frame_auc_macro", "eer", "average_precision")
# Keys that change where or how fast a run goes, not its numbers (model.variant is what the table varies).
_RUN_ONLY = ("model.variant", "data.cache_dir", "data.tfds_data_dir", "data.backend", "train.compilation_cache_dir",
             "train.prefetch", "train.checkpoint_every_steps", "train.keep_checkpoints", "train.log_every_steps",
             "eval.batch_size")


def parse_variants(names) -> tuple[str, ...]:
  """The requested variants (all nine for None/empty), in the order given, each once."""
  names = [n.strip() for n in (names or []) if n.strip()]
  unknown = [n for n in names if n not in models.VARIANTS]
  if unknown:
    raise UserError(f"--variants: unknown {', '.join(unknown)}; expected some of {','.join(models.VARIANTS)}")
  return tuple(dict.fromkeys(names)) or models.VARIANTS


def variant_config(config, variant: str):
  """`config` for `variant`: T=1 variants see single frames, the others keep the config's T (3 if it is 1)."""
  c = copy.deepcopy(config)
  c.model.variant = variant
  if models.default_temporal(variant) == 1:
    c.model.temporal = 1
  elif config.model.temporal == 1:
    c.model.temporal = models.default_temporal(variant)
  return c


def _write_atomic(path: str, text: str) -> None:
  tmp = f"{path}.tmp-{os.getpid()}"
  with open(tmp, "w") as f:
    f.write(text)
  os.replace(tmp, path)


def _read_json(path: str) -> dict[str, Any] | None:
  if not os.path.isfile(path):
    return None
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise UserError(f"{path}: unreadable ({e}); delete it to redo that step") from None


def _experiment(config) -> dict[str, Any]:
  flat = config_check.flatten(config)
  return {k: list(v) if isinstance(v, tuple) else v for k, v in sorted(flat.items()) if k not in _RUN_ONLY}


def _check_same_ablation(config, workdir: str) -> None:
  """Records the experiment's config in `workdir`, or refuses one that differs from what is recorded."""
  path = os.path.join(workdir, CONFIG_JSON)
  now, saved = _experiment(config), _read_json(path)
  if saved is None:
    if jax.process_index() == 0:
      os.makedirs(workdir, exist_ok=True)
      _write_atomic(path, json.dumps(now, indent=2) + "\n")
    return
  for key in sorted(set(now) | set(saved)):
    field = config_check.SCHEMA.get(key)
    if key not in saved and field is not None and now[key] == json.loads(json.dumps(field.default)):
      continue  # a key added to the schema after this ablation ran, at its default: nothing changed
    if saved.get(key) != now.get(key):
      raise UserError(f"{path}: this ablation ran with {key}={saved.get(key)!r}, the config says "
                      f"{now.get(key)!r}; use a new --workdir or the same config")


def count_params(config) -> int:
  from maskedskip_jax import train  # pylint: disable=g-import-not-at-top
  model = train.build_model(config)
  x = jax.ShapeDtypeStruct((1, model.temporal, *config.data.image_size, config.data.channels), np.float32)
  return models.count_params(jax.eval_shape(model.init, jax.random.key(0), x)["params"])


def _report_path(workdir: str, variant: str) -> str:
  return os.path.join(workdir, variant, "eval", "report.json")


def _train(config, vdir: str) -> bool:
  """Trains (or resumes) one variant unless done; returns False when pre-empted. Keeps the time in TIME_FILE."""
  from maskedskip_jax import train  # pylint: disable=g-import-not-at-top
  path = os.path.join(vdir, TIME_FILE)
  record = _read_json(path) or {"train_seconds": 0.0, "finished": False}
  if record["finished"]:
    return True  # trained before, the evaluation is what was missing
  begin = time.perf_counter()
  result = train.train(config, vdir)
  record = {"train_seconds": record["train_seconds"] + time.perf_counter() - begin,
            "finished": not result["preempted"]}
  if jax.process_index() == 0:
    _write_atomic(path, json.dumps(record, indent=2) + "\n")
  return record["finished"]


def _row(config, workdir: str, variant: str, arm: str | None = None, overrides=None,
         trained_in: str | None = None) -> dict[str, Any] | None:
  """The table row of an arm (default: the variant alone) whose evaluation is done, else None."""
  arm = arm or variant
  report = _read_json(_report_path(workdir, arm))
  if report is None:
    return None
  c = config_check.with_values(variant_config(config, variant), overrides or {})
  timing = _read_json(os.path.join(workdir, trained_in or arm, TIME_FILE)) or {}
  extra = {} if overrides is None else {"arm": arm, "overrides": overrides, "trained_in": trained_in or arm}
  return {"variant": variant, **extra, "temporal": c.model.temporal, "params": count_params(c),
          **{k: report.get(k) for k in _HEADLINE}, "train_seconds": timing.get("train_seconds"),
          "checkpoint_step": report.get("checkpoint_step"), "postprocess": report.get("postprocess"),
          "num_frames": report.get("num_frames"), "report": os.path.abspath(_report_path(workdir, arm))}


def markdown(rows: list[dict[str, Any]], title: str = "", first: str = "variant") -> str:
  """The table; `first` = 'variant', or 'arm' for the parts table (its rows name the parts switched on)."""
  def metric(x):
    return "n/a" if x is None else f"{x:.4f}"
  lines = [title, ""] if title else []
  lines += [f"| {first} | T | params | frame AUC micro | frame AUC macro | EER | AP | train time (s) |",
            "|---|---|---|---|---|---|---|---|"]
  for r in rows:
    seconds = "n/a" if r["train_seconds"] is None else f"{r['train_seconds']:.0f}"
    if r.get("trained_in", r.get("arm")) != r.get("arm"):
      seconds = f"(as {r['trained_in']})"
    lines.append(f"| {r[first]} | {r['temporal']} | {r['params']:,} | "
                 + " | ".join(metric(r[k]) for k in _HEADLINE) + f" | {seconds} |")
  return "\n".join(lines) + "\n"


def _title(config, config_name: str | None) -> str:
  t = config.train
  steps = f"{t.num_steps} steps" if t.num_steps > 0 else f"{t.epochs} epochs"
  method = postprocess_lib.describe(postprocess_lib.parse_chain(config.eval.postprocess))
  return (f"Ablation on {config.data.name} (config {config_name or '?'}): {steps}, batch {t.batch_size}, "
          f"seed {t.seed}, {tuple(config.data.image_size)} x {config.data.channels} channel(s), latent "
          f"{config.model.latent_dim}; each variant's last checkpoint, frame scores post-processed with "
          f"'{method}'.")


def write_table(config, workdir: str, config_name: str | None = None) -> list[dict[str, Any]]:
  """Writes ablation.md / ablation.json for every variant evaluated in `workdir`; returns the rows."""
  rows = [r for r in (_row(config, workdir, v) for v in models.VARIANTS) if r is not None]
  if jax.process_index() == 0:
    title = _title(config, config_name)
    _write_atomic(os.path.join(workdir, TABLE_MD), markdown(rows, title))
    doc = {"title": title, "config_name": config_name, "dataset": config.data.name, "rows": rows,
           "config": _experiment(config)}
    _write_atomic(os.path.join(workdir, TABLE_JSON), json.dumps(doc, indent=2) + "\n")
  return rows


def _base(config, workdir: str):
  from maskedskip_jax import train_data  # pylint: disable=g-import-not-at-top
  config_check.validate(config)
  _check_same_ablation(config, workdir)
  base = copy.deepcopy(config)
  # The tables compare networks, so every row is scored by the reconstruction alone (the paper's score); a
  # config's hybrid score is the parts table's hybrid_score row.
  base.eval.hybrid_beta = 0.0
  if base.data.name == "synthetic" and not base.data.root:
    base.data.root = train_data.dataset_root(config, workdir)  # generated once, shared by every arm
  return base


def run(config, workdir: str, variants=None, config_name: str | None = None) -> dict[str, Any]:
  """Trains and evaluates `variants` (default all) in `workdir/<variant>`; returns {'rows', 'preempted'}."""
  from maskedskip_jax import evaluate  # pylint: disable=g-import-not-at-top
  variants = parse_variants(variants)
  workdir = os.path.abspath(workdir)
  base = _base(config, workdir)
  preempted = False
  for variant in variants:
    if os.path.isfile(_report_path(workdir, variant)):
      print(f"ablate: {variant}: evaluated before, skipped ({_report_path(workdir, variant)})")
      continue
    print(f"ablate: {variant}: training and evaluating in {os.path.join(workdir, variant)}")
    c = variant_config(base, variant)
    vdir = os.path.join(workdir, variant)
    if not _train(c, vdir):
      preempted = True
      break
    evaluate.run(c, vdir)
  rows = write_table(config, workdir, config_name)
  if jax.process_index() == 0:
    print(markdown(rows, _title(config, config_name)))
    print(f"-> {os.path.join(workdir, TABLE_MD)}")
  return {"rows": rows, "preempted": preempted}


def main(argv: list[str]) -> None:
  # pylint: disable=protected-access
  if len(argv) > 1:
    main_lib._fail(f"unexpected arguments {' '.join(argv[1:])}; flags look like --variants=unet,autoencoder")
  if flags.FLAGS["mode"].present:
    main_lib._fail("--mode: not used by the ablation, which always trains and evaluates")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  try:
    config = main_lib.load_config()
    from maskedskip_jax import sharding  # pylint: disable=g-import-not-at-top
    sharding.initialize(main_lib._COORDINATOR.value, main_lib._NUM_PROCESSES.value, main_lib._PROCESS_ID.value)
    name = main_lib._config_name()
    workdir = main_lib._WORKDIR.value or os.path.join("runs", f"ablate_{name}")
    variants, parts = flags.FLAGS.variants, flags.FLAGS.parts
    if parts is not None:
      from maskedskip_jax import parts_ablation  # pylint: disable=g-import-not-at-top
      result = parts_ablation.run(config, workdir, parts, variants, config_name=name)
    else:
      result = run(config, workdir, variants, config_name=name)
  except UserError as e:
    main_lib._fail(e)
  sys.exit(main_lib.EXIT_PREEMPTED if result["preempted"] else 0)


def cli(argv: list[str] | None = None) -> None:
  # pylint: disable=protected-access
  argv = list(sys.argv if argv is None else argv)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  app_lib.exit_on_unknown_override(argv)  # before the config flag applies the overrides
  main_lib._define_config_flag()
  # Defined here, not at import: parts_ablation imports this module, which under `python -m` is a second copy.
  flags.DEFINE_list("variants", None, f"Variants to run (default all): {','.join(models.VARIANTS)}.")
  from maskedskip_jax import parts_ablation  # pylint: disable=g-import-not-at-top
  flags.DEFINE_list("parts", None, "Parts to ablate on the config's variant ('all' or some of "
                    f"{','.join(parts_ablation.PARTS)}): one row per part, in parts.md.")
  app.run(main, argv=argv, flags_parser=main_lib.parse_flags)


if __name__ == "__main__":
  cli()
