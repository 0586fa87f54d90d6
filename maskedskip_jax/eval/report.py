"""What every evaluation report is made of, for the model's (`evaluate`) and the baselines' alone (`baseline_eval`).

The eval.* settings, the metrics of one set of frame scores under one post-processing, the post-processing
table, scores.csv, and the folder swap that makes a finished result appear all at once.
"""

import csv
from typing import Any

import numpy as np

from maskedskip_jax import config as config_lib
from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import metrics
from maskedskip_jax.eval import postprocess as postprocess_lib
from maskedskip_jax.eval import threshold

# eval.* keys the evaluations read, with the value used when a config lacks them. The alarm's keys are read by
# `threshold.plan`, and groups (eval.aed_mae.*) by their own model's scorer, from the config itself.
DEFAULTS = {
  k.split(".", 1)[1]: f.default
  for k, f in config_lib.SCHEMA.items()
  if k.startswith("eval.") and k.count(".") == 1 and k.split(".", 1)[1] not in threshold.SETTINGS
}
HEADLINE = ("frame_auc_micro", "frame_auc_macro", "eer", "average_precision")
HEADLINE_HEADERS = ("frame AUC micro", "frame AUC macro", "EER", "AP")


def settings(config) -> dict[str, Any]:
  """The eval.* values of `config`, defaults filled in."""
  section = config.get("eval") or {}
  return {k: section.get(k, v) for k, v in DEFAULTS.items()}


def labelled(store, who: str) -> tuple[list, list[int]]:
  """(labels of every video, None where unknown; indices of the labelled videos); an error when none is."""
  labels = [store.labels(v) for v in range(store.num_videos)]
  known = [v for v in range(store.num_videos) if labels[v] is not None]
  if not known:
    raise UserError(f"{who}: the test split has no frame labels; nothing to evaluate against")
  return labels, known


def table_methods(gaussian_sigma: float, configured: str = "none") -> list[str]:
  """The post-processing variants tabulated: none, the paper's median 17, Gaussian, min-max, z-score (+ configured)."""
  methods = ["none", "median:window=17", f"gaussian:sigma={gaussian_sigma:g}", "minmax", "zscore"]
  names = {postprocess_lib.describe(postprocess_lib.parse_chain(m)) for m in methods}
  if postprocess_lib.describe(postprocess_lib.parse_chain(configured)) not in names:
    methods.append(configured)
  return methods


def cell(x) -> str:
  return "n/a" if x is None else f"{x:.4f}"


def headline_markdown(rows: list[dict[str, Any]], before=(), after=()) -> str:
  """A markdown table of the headline metrics, with columns (header, row -> text) before and after them."""
  headers = [h for h, _ in before] + list(HEADLINE_HEADERS) + [h for h, _ in after]
  lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
  for r in rows:
    cells = [f(r) for _, f in before] + [cell(r[k]) for k in HEADLINE] + [f(r) for _, f in after]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def markdown_table(rows: list[dict[str, Any]]) -> str:
  """The post-processing table: one row per method."""
  return headline_markdown(rows, before=[("post-processing", lambda r: r["postprocess"])])


def frame_results(scores, labels, names, known, spec):
  """(post-processed scores of every video, metrics.frame_metrics over the labelled videos `known`)."""
  processed = postprocess_lib.postprocess(scores, spec)
  result = metrics.frame_metrics([processed[v] for v in known], [labels[v] for v in known], [names[v] for v in known])
  return processed, result


def table(scores, labels, names, known, methods) -> list[dict[str, Any]]:
  """One row per post-processing method: its canonical name and the headline metrics."""
  rows = []
  for spec in methods:
    result = frame_results(scores, labels, names, known, spec)[1]
    rows.append(
      {"postprocess": postprocess_lib.describe(postprocess_lib.parse_chain(spec)), **{k: result[k] for k in HEADLINE}}
    )
  return rows


def label_column(labels) -> list[np.ndarray]:
  """Per-video labels for scores.csv, -1 for every frame of an unlabelled video (None)."""
  return [np.full(0, -1) if y is None else np.asarray(y, np.int64) for y in labels]


def write_csv(path: str, names, columns: dict[str, list[np.ndarray]]) -> None:
  """video,frame,<columns...>, one row per frame; integer columns as integers, the rest to 8 significant digits.

  A column's entry for a video may be empty (an unlabelled video's labels): it is written as -1.
  """
  lengths = [max(len(col[v]) for col in columns.values()) for v in range(len(names))]
  with open(path, "w", newline="") as f:
    out = csv.writer(f)
    out.writerow(["video", "frame", *columns])
    for v, name in enumerate(names):
      values = [np.full(lengths[v], -1) if len(col[v]) == 0 else np.asarray(col[v]) for col in columns.values()]
      texts = [
        [str(int(x)) for x in a] if np.issubdtype(a.dtype, np.integer) else [f"{x:.8g}" for x in a] for a in values
      ]
      for k in range(lengths[v]):
        out.writerow([name, k, *(t[k] for t in texts)])


def headlines(named_scores, labels, names, known, steps) -> dict[str, dict[str, Any]]:
  """{name: the HEADLINE metrics of those per-video frame scores, post-processed by `steps`}."""
  out = {}
  for name, scores in named_scores.items():
    result = frame_results(scores, labels, names, known, steps)[1]
    out[name] = {k: result[k] for k in HEADLINE}
  return out
