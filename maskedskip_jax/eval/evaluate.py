"""`--mode=eval`: score every test frame with the last checkpoint and write the results under `workdir/eval/`.

  scores.csv    video,frame,score,label: every test frame, raw score (label -1 where unknown); a
                score_postprocessed column is added when eval.postprocess is not 'none', and a
                score_<baseline> column of raw scores for each no-learning baseline (eval.baselines), and
                score_alarm (the alarm's score) when an alarm threshold was calibrated
  report.json   frame AUC micro/macro (+ policy), EER, AP, counts, the post-processing table, pixel AUROC and
                RBDC/TBDC when the test set has masks, the baselines' headline metrics (`baselines`, scored and
                post-processed exactly like the model: baseline_eval), every protocol choice behind them, and
                `alarm`: the threshold calibrated on held-out normal footage and what it gives here (`threshold`)
  roc.png       the model's ROC curve beside the baselines'
  plots/<video>.png, worst_frames.png   diagnostics (see `diagnostics`)
  report.html   all of the above for a person: report.json's numbers and the figures, self-contained (`html_report`)
  videos/<video>.mp4                    input | reconstruction | difference (eval.write_videos)

The model evaluated is the newest checkpoint (or a bundle): never one chosen by test AUC. Scores come from the
streaming scorer (each frame encoded once, every frame the centre of one clip, edges replicated). Everything is
written into a temporary folder that replaces `eval/` only when complete.
"""

import os
import time
from typing import Any

import jax
import numpy as np

from maskedskip_jax import atomic
from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import aed_mae_scorer
from maskedskip_jax.eval import baseline_eval
from maskedskip_jax.eval import baselines as baselines_lib
from maskedskip_jax.eval import collect as eval_collect
from maskedskip_jax.eval import diagnostics
from maskedskip_jax.eval import html_report
from maskedskip_jax.eval import hybrid
from maskedskip_jax.eval import plots
from maskedskip_jax.eval import postprocess as postprocess_lib
from maskedskip_jax.eval import report as eval_report
from maskedskip_jax.eval import streaming
from maskedskip_jax.eval import summary
from maskedskip_jax.eval import threshold
from maskedskip_jax.nn import aed_mae as aed_mae_model
from maskedskip_jax.nn import models
from maskedskip_jax.train import console
from maskedskip_jax.train import inputs as train_data


def _scoring_protocol(patch: int) -> dict[str, str]:
  return {
    "score_map": "L2 norm over channels of (x - recon) / sqrt(C)",
    "frame_score": f"max mean over {patch}x{patch} patches on the aligned and offset-by-{patch // 2} grids",
    "alignment": "a clip's score belongs to its centre frame; every frame scored, video edges replicated",
  }


def _score_all(scorer, store, collect, progress: bool) -> tuple[float, float]:
  """Streams every frame of `store` into `collect`; returns (compile seconds, scoring seconds)."""
  begin = time.perf_counter()
  scorer.compile()
  compile_seconds = time.perf_counter() - begin
  begin = time.perf_counter()
  videos = (store.video_frames(v) for v in range(store.num_videos))
  with console.Progress(store.total_frames, unit="frame", desc="eval", disable=not progress) as bar:
    for item in scorer.stream(videos):
      collect.add(item)
      bar.update(1)
  collect.finish()
  return compile_seconds, time.perf_counter() - begin


def _standardisation(scorer, train_store, spec: hybrid.Spec) -> hybrid.Standardisation:
  """The hybrid terms' mean and std on the training videos, the model's scores streamed like the test set's."""
  if train_store is None:
    raise UserError(
      "eval.hybrid_standardise: standardising the hybrid score needs the training split, and none was given"
    )
  recon = [[] for _ in range(train_store.num_videos)]
  for item in scorer.stream(train_store.video_frames(v) for v in range(train_store.num_videos)):
    recon[item.video].append(item.score)
  frames = (train_store.video_frames(v) for v in range(train_store.num_videos))
  return hybrid.standardisation(recon, frames, spec)


def evaluate_store(
  model,
  variables,
  store,
  *,
  temporal: int | None = None,
  batch_size: int = 32,
  postprocess: str = "none",
  out_dir: str,
  patch: int = 16,
  gaussian_sigma: float = 3.0,
  write_videos: bool = False,
  pixel_metrics: bool = True,
  pixel_size: int = 64,
  region_thresholds: int = 20,
  hybrid_alpha: float = 1.0,
  hybrid_beta: float = 0.0,
  motion_median: int = 0,
  mask_weight: float = 0.0,
  hybrid_motion: str = "gradient",
  hybrid_standardise: bool = False,
  train_store=None,
  info: dict[str, Any] | None = None,
  progress: bool = True,
  baselines=baselines_lib.BASELINES,
  worst_frames: int = diagnostics.WORST_FRAMES,
  alarm: threshold.Plan | None = None,
  aed_mae: aed_mae_scorer.ScoreSettings | None = None,
  frame_offset: int = 3,
) -> dict[str, Any]:
  """Scores every frame of `store` (a FrameStore) and writes the evaluation files to `out_dir`; returns the report.

  Headline metrics use `postprocess`; the table covers `eval_report.table_methods(gaussian_sigma, postprocess)`.
  `baselines` (names, or a comma-separated string; () for none) are scored beside the model. `info`
  entries (dataset, variant, checkpoint_step, ...) are copied into the report. The frame score is the
  reconstruction's, or a hybrid with a motion term and/or the mask head's map (`hybrid`; `train_store`, the
  training split, is needed to standardise it); a hybrid's terms alone are reported in `score_components`. A model
  with a mask head also gets the AUCs of its map alone in the report (`mask_head_score`). `worst_frames`: the
  misses drawn in worst_frames.png (0 = none). `alarm`: the threshold's calibration (`threshold.plan`).

  An AED-MAE `model` is scored by its paper's Eq. 6 (`aed_mae_scorer`, settings `aed_mae`, input frames
  `frame_offset` apart) instead of the reconstruction patch score; its terms alone go to `score_components`.
  The hybrid, the mask head, reconstruction videos and worst frames belong to the U-Net family.
  """
  baselines = baselines_lib.parse_names(baselines)
  is_aed_mae = isinstance(model, aed_mae_model.AedMae)
  if is_aed_mae:
    aed_mae_scorer.check_eval_options(hybrid_beta=hybrid_beta, mask_weight=mask_weight, write_videos=write_videos)
    worst_frames = 0
  elif mask_weight > 0 and not model.mask_head:
    raise UserError(
      f"eval.mask_weight={mask_weight} scores from the mask head's map, but this {model.variant} "
      "model has no mask head (model.mask_head=False)"
    )
  model_temporal = 2 * frame_offset + 1 if is_aed_mae else model.temporal
  if temporal is not None and temporal != model_temporal:
    raise UserError(f"eval: the model takes T={model_temporal} frames per clip, but temporal={temporal} was asked")
  steps = postprocess_lib.parse_chain(postprocess)
  method = postprocess_lib.describe(steps)
  names = store.video_names
  labels, known = eval_report.labelled(store, "eval")
  out_dir = os.path.abspath(out_dir)
  grid = tuple(min(int(pixel_size), s) for s in store.image_size)  # never above the model's resolution
  if is_aed_mae:
    settings, map_size = aed_mae or aed_mae_scorer.ScoreSettings(), grid if pixel_metrics else None
    kw = dict(frame_offset=frame_offset, batch_size=batch_size, settings=settings, map_size=map_size)
    scorer = aed_mae_scorer.AedMaeScorer(model, variables, store.image_size, **kw)
  else:
    scorer = streaming.StreamingScorer(
      model,
      variables,
      store.image_size,
      batch_size=batch_size,
      patch=patch,
      with_recon=write_videos,
      map_size=store.image_size if write_videos else grid if pixel_metrics else None,
    )
  with atomic.directory(out_dir) as tmp:
    collect = eval_collect.Collector(store, tmp, grid, write_videos, pixel_metrics)
    compile_seconds, seconds = _score_all(scorer, store, collect, progress)
    components = dict(getattr(scorer, "components", {}))  # the test set's: the alarm's calibration streams again
    mask_scores = [np.asarray(s, np.float64) for s in collect.mask_scores]
    spec = hybrid.Spec(hybrid_alpha, hybrid_beta, hybrid_motion, motion_median, mask_weight, hybrid_standardise, patch)
    recon = [np.asarray(s, np.float64) for s in collect.scores]
    alarm, alarm_scores = threshold.section(alarm, scorer, recon, labels, names)
    base = baseline_eval.evaluate(store, baselines, patch, labels, known, steps)
    motion_terms = None
    if spec.beta > 0:  # a baseline already scored as the motion term (flow is the costly one) is not redone
      motion_terms = (
        base[spec.motion].scores
        if spec.motion in base
        else [hybrid.motion_scores(store.video_frames(v), spec) for v in range(store.num_videos)]
      )
    stats = _standardisation(scorer, train_store, spec) if spec.needs_training_scores else None
    scores = hybrid.combine(recon, motion_terms, mask_scores, spec, stats)
    table = eval_report.table(scores, labels, names, known, eval_report.table_methods(gaussian_sigma, postprocess))
    processed, result = eval_report.frame_results(scores, labels, names, known, steps)
    roc = result.pop("roc_curve")  # drawn in roc.png; scores.csv holds what is needed to redraw it
    result["per_video_auc"] = dict(zip(result.pop("video_names"), result["per_video_auc"]))
    report = {
      **(info or {}),
      "postprocess": method,
      **result,
      "unlabelled_videos": [names[v] for v in range(store.num_videos) if labels[v] is None],
      "postprocess_table": table,
      "postprocess_table_markdown": eval_report.markdown_table(table),
      "scoring": settings.describe() if is_aed_mae else _scoring_protocol(patch),
      "temporal": model_temporal,
      "frame_score": aed_mae_scorer.report_section(settings) if is_aed_mae else hybrid.report_section(spec, stats),
      "image_size": list(store.image_size),
      "channels": model.channels,
      "dtype": np.dtype(model.dtype).name,
      "batch_size": batch_size,
      "compile_seconds": compile_seconds,
      "scoring_seconds": seconds,
      "frames_per_second": store.total_frames / max(seconds, 1e-9),
      "pixel": None,
      "alarm": alarm,
      **baseline_eval.report_section(base, patch, method),
    }
    if is_aed_mae:  # Eq. 6's terms alone, each through the same filters, post-processed like the headline
      terms = aed_mae_scorer.weighted(components, settings)
    elif not spec.reconstruction_only:  # the hybrid's terms alone: the reconstruction's row is always there
      terms = {"reconstruction": recon, **({f"motion ({spec.motion})": motion_terms} if motion_terms else {})}
    if is_aed_mae or not spec.reconstruction_only:
      report["score_components"] = eval_report.headlines(terms, labels, names, known, steps)
    if not is_aed_mae and model.mask_head:
      alone = eval_report.frame_results(mask_scores, labels, names, known, postprocess_lib.parse_chain("none"))[1]
      report["mask_head_score"] = {k: alone[k] for k in eval_report.HEADLINE}
    if pixel_metrics and collect.maps:
      report["pixel"] = eval_collect.pixel_report(collect.maps, collect.masks, grid, region_thresholds)
    columns = {
      "score": scores,
      "label": eval_report.label_column(labels),
      **({"score_postprocessed": processed} if method != "none" else {}),
      **baseline_eval.csv_columns(base),
      **({"score_alarm": alarm_scores} if alarm_scores else {}),
    }
    eval_report.write_csv(os.path.join(tmp, "scores.csv"), names, columns)
    if roc is not None:
      plots.plot_roc(
        roc["fpr"],
        roc["tpr"],
        result["frame_auc_micro"],
        os.path.join(tmp, "roc.png"),
        title=f"Frame-level ROC ({method})",
        label="model" if base else None,
        curves=baseline_eval.roc_curves(base),
      )
    best = baseline_eval.best(report["baselines"])
    best = (best, base[best].processed) if best else None
    drawn = threshold.drawn(alarm, alarm_scores, method if spec.reconstruction_only or is_aed_mae else None)
    diagnostics.video_plots(os.path.join(tmp, "plots"), names, labels, processed, method, best, drawn)
    if worst_frames > 0:
      diagnostics.worst_frames(
        model, variables, store, processed, labels, os.path.join(tmp, "worst_frames.png"), worst_frames, method
      )
    html_report.write(tmp, report, names)
    atomic.write_json(os.path.join(tmp, "report.json"), report)  # last: its presence means complete
  return report


def load_model(config, workdir: str):
  """(model, host variables, checkpoint step, source) of the workdir's newest checkpoint (early stopping: best)."""
  from maskedskip_jax.train import sharding  # pylint: disable=g-import-not-at-top
  from maskedskip_jax.train import state as train_state  # pylint: disable=g-import-not-at-top

  model, variables, step = train_state.restore_variables(config, workdir)
  folder = os.path.abspath(train_state.checkpoints_used(config, workdir))
  return model, sharding.host_copy(variables), step, os.path.join(folder, "checkpoints", str(step))


def run(config, workdir: str, *, trained=None, out_dir: str | None = None) -> dict[str, Any] | None:
  """Evaluates the newest checkpoint of `workdir` on the config's test split; returns the report.

  `trained`: (model, variables, step, source) to score instead, e.g. `bundle.load_for_config`'s. The files go
  to `out_dir` (default `workdir/eval`): the ablation scores one trained model several ways.
  """
  from maskedskip_jax.train import compile_cache  # pylint: disable=g-import-not-at-top

  s = eval_report.settings(config)
  compile_cache.enable(config.train.compilation_cache_dir)
  model, variables, step, source = trained or load_model(config, workdir)
  if jax.process_index() != 0:
    return None  # one writer: every process holds the same model, process 0 scores the test set
  is_aed_mae = isinstance(model, aed_mae_model.AedMae)
  if not is_aed_mae:
    models.check_input_shape(model, (1, model.temporal, *config.data.image_size, config.data.channels))
  store = train_data.load_split(config, workdir, "test", all_processes=False)  # the others have returned
  # The training split: to standardise a hybrid score, and for its held-out share, the alarm's calibration.
  needed = s["hybrid_standardise"] and s["hybrid_beta"] > 0 or config.data.holdout_share > 0
  train = train_data.load_split(config, workdir, "train", all_processes=False) if needed else None
  info = {
    "dataset": config.data.name,
    "variant": config.model.variant,
    "checkpoint_step": step,
    "checkpoint": source,
    "checkpoint_selection": "the newest checkpoint, the best on the held-out training videos under "
    "train.early_stopping_patience, or the given bundle; never chosen on test data",
  }
  out_dir = os.path.abspath(out_dir or os.path.join(workdir, "eval"))
  # The eval.* settings are evaluate_store's keyword arguments by name.
  alarm = threshold.plan(config, train, step)
  family = {"aed_mae": aed_mae_scorer.settings(config), "frame_offset": config.model.aed_mae.frame_offset}
  kwargs = dict(out_dir=out_dir, train_store=train, info=info, alarm=alarm, **s, **(family if is_aed_mae else {}))
  report = evaluate_store(model, variables, store, **kwargs)
  summary.print_lines(report, out_dir)
  return report
