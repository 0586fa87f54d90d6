"""Figures a person looks at after an evaluation, to see where and why the model fails.

  plots/<video>.png   the model's headline score over time beside the best baseline's (each min-max scaled within
                      the video, as the legend says), labelled-anomalous frames shaded, and the alarm threshold:
                      on the headline curve when that is the alarm's score, else in a panel below with the alarm
                      score it applies to
  worst_frames.png    the misses: the labelled-anomalous frames with the lowest headline model scores, one row
                      each: input frame, reconstruction, score map, with video, frame and score

The worst frames' reconstructions come from a second, small pass after scoring: only their K clips are run
through the model (`inference.reconstruct`, the plain forward, edges replicated like the streaming scorer), so
evaluation never keeps every frame's reconstruction. The map shown is the reconstruction's error map
(`scoring.score_maps`); with eval.hybrid_beta or eval.mask_weight the headline score has other terms too.
"""

import os

import numpy as np

from maskedskip_jax.eval import collect as eval_collect
from maskedskip_jax.eval import plots
from maskedskip_jax.nn import inference
from maskedskip_jax.nn import scoring

WORST_FRAMES = 8


def video_plots(folder: str, names, labels, scores, method: str, baseline=None, alarm=None) -> None:
  """plots/<video>.png for every video: the model's `scores` and, given `baseline` = (name, per-video scores),
  the baseline's on the same min-max scaled axis. `alarm` = (per-video alarm scores, threshold, label,
  on_headline), as `threshold.drawn` gives it: the threshold line on `scores` when on_headline, else the alarm
  score and its threshold in a panel of their own."""
  for v, name in enumerate(names):
    others = [(baseline[1][v], f"{baseline[0]} baseline")] if baseline else []
    line = panel = None
    if alarm is not None:
      alarm_scores, value, label, on_headline = alarm
      if on_headline:
        line = (value, f"alarm threshold {value:.4g}")
      else:
        panel = (alarm_scores[v], value, label)
    plots.plot_scores(
      scores[v],
      labels[v],
      os.path.join(folder, f"{eval_collect.safe_name(name)}.png"),
      title=f"{name} ({method})",
      others=others,
      label="model",
      threshold=line,
      alarm=panel,
    )


def misses(scores, labels, k: int = WORST_FRAMES) -> list[tuple[int, int]]:
  """(video, frame) of the k labelled-anomalous frames with the lowest scores, lowest first; ties in frame order.

  labels[v] None (an unlabelled video) contributes nothing.
  """
  found = [
    (float(s[i]), v, int(i))
    for v, (s, y) in enumerate(zip(scores, labels))
    if y is not None
    for i in np.flatnonzero(np.asarray(y) != 0)
  ]
  return [(v, i) for _, v, i in sorted(found)[:k]]


def clips_of(store, picks, temporal: int) -> np.ndarray:
  """float32 (K, T, H, W, C) in [0, 1]: the clip centred on each (video, frame), frames clamped into the video."""
  h = (temporal - 1) // 2
  out = []
  for v, c in picks:
    frames = store.video_frames(v)
    out.append(frames[np.clip(np.arange(c - h, c + h + 1), 0, len(frames) - 1)])
  return np.stack(out).astype(np.float32) / 255.0


def worst_frames(
  model, variables, store, scores, labels, path: str, k: int = WORST_FRAMES, method: str = "none"
) -> str | None:
  """Writes `path` (worst_frames.png) for the k worst misses of `scores`; returns it, or None without anomalies."""
  picks = misses(scores, labels, k)
  if not picks:
    return None
  clips = clips_of(store, picks, model.temporal)
  recon = inference.reconstruct(model, variables, clips, batch_size=len(picks), name="worst frames")
  target = clips[:, (model.temporal - 1) // 2]
  maps = np.asarray(scoring.score_maps(target, recon))
  names = store.video_names
  rows = [
    (target[j], recon[j], maps[j], f"{names[v]} frame {c}: score {scores[v][c]:.4g}") for j, (v, c) in enumerate(picks)
  ]
  return plots.plot_frame_grid(
    rows, path, title=f"The {len(picks)} labelled-anomalous frames with the lowest model scores ({method})"
  )
