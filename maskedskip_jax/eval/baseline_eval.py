"""The no-learning baselines (`baselines`) scored exactly like the model: inside every evaluation, and alone.

Inside `evaluate.evaluate_store`, each baseline's frame scores get the model's post-processing and are measured on
the same labelled videos, so report.json's `baselines` section and the model's headline are comparable number
for number. Alone (`python -m maskedskip_jax.main --mode=baselines`), `run` needs no training and no checkpoint:

  workdir/baselines/report.json  per baseline: the headline metrics (eval.postprocess) and the post-processing
                                 table (none, median:window=17, and the configured method), plus the protocol
  workdir/baselines/scores.csv   video,frame,label,score_<name> (raw scores, one column per baseline)
  workdir/baselines/roc.png      every baseline's ROC curve
  workdir/baselines/report.html  the report and the ROC curves as one self-contained page (`html_report`)

written into a temporary folder that replaces `baselines/` only when complete.
"""

import dataclasses
import os
from typing import Any

import numpy as np

from maskedskip_jax import atomic
from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import baselines as baselines_lib
from maskedskip_jax.eval import html_report
from maskedskip_jax.eval import plots
from maskedskip_jax.eval import postprocess as postprocess_lib
from maskedskip_jax.eval import report as eval_report


@dataclasses.dataclass
class Result:
  """One baseline on one test set: raw and post-processed scores per video, headline metrics, its ROC curve."""

  name: str
  scores: list[np.ndarray]
  processed: list[np.ndarray]
  metrics: dict[str, Any]
  roc: dict[str, list[float]] | None


def evaluate(store, names, patch: int, labels, known, spec) -> dict[str, Result]:
  """Every baseline in `names` on `store`, post-processed with `spec`, measured on the labelled videos `known`."""
  video_names = store.video_names
  out = {}
  for name, scores in baselines_lib.score_store(store, names, patch).items():
    processed, result = eval_report.frame_results(scores, labels, video_names, known, spec)
    out[name] = Result(name, scores, processed, {k: result[k] for k in eval_report.HEADLINE}, result["roc_curve"])
  return out


def best(section: dict[str, dict[str, Any]]) -> str | None:
  """The baseline of report.json's `baselines` {name: metrics} with the highest frame AUC micro (None when
  there are none, or none is defined); the first named wins a tie."""
  defined = [n for n, m in section.items() if m["frame_auc_micro"] is not None]
  return max(defined, key=lambda n: section[n]["frame_auc_micro"]) if defined else None


def report_section(results: dict[str, Result], patch: int, method: str) -> dict[str, Any]:
  """report.json's `baselines` (name -> headline metrics) and `baselines_protocol`."""
  return {
    "baselines": {name: r.metrics for name, r in results.items()},
    "baselines_protocol": f"{baselines_lib.protocol(patch)} Post-processing: {method}.",
  }


def roc_curves(results: dict[str, Result]) -> list[tuple[np.ndarray, np.ndarray, float | None, str]]:
  """(fpr, tpr, auc, label) of each baseline with a defined ROC, for `plots.plot_roc`."""
  return [(r.roc["fpr"], r.roc["tpr"], r.metrics["frame_auc_micro"], r.name) for r in results.values() if r.roc]


def csv_columns(results: dict[str, Result]) -> dict[str, list[np.ndarray]]:
  return {f"score_{name}": r.scores for name, r in results.items()}


def comparison(model_auc: float | None, section: dict[str, dict[str, Any]]) -> str:
  """'model 0.930 micro vs best baseline 0.840 (frame_diff)' from the model's AUC and report.json's `baselines`."""
  name = best(section)
  model = "n/a" if model_auc is None else f"{model_auc:.3f}"
  if name is None:
    return f"model {model} micro vs best baseline n/a"
  return f"model {model} micro vs best baseline {section[name]['frame_auc_micro']:.3f} ({name})"


def markdown_table(rows: list[dict[str, Any]]) -> str:
  """Rows {baseline, postprocess, headline metrics...} as a markdown table."""
  return eval_report.headline_markdown(
    rows, before=[("baseline", lambda r: r["baseline"]), ("post-processing", lambda r: r["postprocess"])]
  )


def _methods(configured: str) -> list[str]:
  """The configured post-processing first, then none and the paper's median 17 where different."""
  out, seen = [], set()
  for spec in (configured, "none", "median:window=17"):
    name = postprocess_lib.describe(postprocess_lib.parse_chain(spec))
    if name not in seen:
      seen.add(name)
      out.append(spec)
  return out


def evaluate_alone(
  store,
  *,
  names=baselines_lib.BASELINES,
  patch: int = 16,
  postprocess: str = "none",
  out_dir: str,
  info: dict[str, Any] | None = None,
) -> dict[str, Any]:
  """Scores the baselines on `store` and writes report.json, report.html, scores.csv and roc.png to `out_dir`;
  returns the report."""
  names = baselines_lib.parse_names(names)
  if not names:
    raise UserError(
      "eval.baselines: empty, so --mode=baselines has nothing to score; name at least one of "
      f"{', '.join(baselines_lib.BASELINES)}"
    )
  steps = postprocess_lib.parse_chain(postprocess)
  method = postprocess_lib.describe(steps)
  video_names = store.video_names
  labels, known = eval_report.labelled(store, "baselines")
  out_dir = os.path.abspath(out_dir)
  results = evaluate(store, names, patch, labels, known, steps)
  rows, tables = [], {}
  for name, r in results.items():
    tables[name] = eval_report.table(r.scores, labels, video_names, known, _methods(postprocess))
    rows += [{"baseline": name, **row} for row in tables[name]]
  report = {
    **(info or {}),
    "postprocess": method,
    **report_section(results, patch, method),
    "postprocess_tables": tables,
    "markdown": markdown_table(rows),
    "num_frames": int(sum(len(labels[v]) for v in known)),
    "num_videos": len(known),
    "unlabelled_videos": [video_names[v] for v in range(store.num_videos) if labels[v] is None],
    "image_size": list(store.image_size),
    "channels": store.channels,
  }
  with atomic.directory(out_dir) as tmp:
    columns = {"label": eval_report.label_column(labels), **csv_columns(results)}
    eval_report.write_csv(os.path.join(tmp, "scores.csv"), video_names, columns)
    curves = roc_curves(results)
    if curves:
      fpr, tpr, auc, label = curves[0]
      plots.plot_roc(
        fpr,
        tpr,
        auc,
        os.path.join(tmp, "roc.png"),
        title=f"Baselines' frame-level ROC ({method})",
        label=label,
        curves=curves[1:],
        highlight_first=False,
      )
    html_report.write(tmp, report, video_names)
    atomic.write_json(os.path.join(tmp, "report.json"), report)  # last: its presence means complete
  return report


def run(config, workdir: str, out_dir: str | None = None) -> dict[str, Any] | None:
  """`--mode=baselines`: the configured test split scored by the baselines alone (no model); prints the table."""
  import jax  # pylint: disable=g-import-not-at-top

  from maskedskip_jax.train import inputs as train_data  # pylint: disable=g-import-not-at-top

  if jax.process_index() != 0:
    return None  # one writer; nothing here is sharded
  s = eval_report.settings(config)
  names = baselines_lib.parse_names(s["baselines"])
  store = train_data.load_split(config, workdir, "test", all_processes=False)
  out_dir = os.path.abspath(out_dir or os.path.join(workdir, "baselines"))
  report = evaluate_alone(
    store,
    names=names,
    patch=s["patch"],
    postprocess=s["postprocess"],
    out_dir=out_dir,
    info={"dataset": config.data.name},
  )
  print(report["markdown"])
  name = best(report["baselines"])
  best_text = "n/a" if name is None else f"{name} {report['baselines'][name]['frame_auc_micro']:.3f}"
  print(
    f"baselines ({report['postprocess']}): best frame AUC micro {best_text}; {report['num_frames']} frames "
    f"at {store.image_size[0]}x{store.image_size[1]}x{store.channels} -> {out_dir}"
  )
  return report
