"""report.html: an evaluation's report.json and figures as one self-contained page, for a person to read.

Written by `evaluate.evaluate_store` and `baseline_eval.evaluate_alone` into their staged folder, from the report
dict and the PNGs already there (embedded as data URIs, so the page can be mailed or archived alone). Sections
appear only when the report has what they show: the headline metrics (the model, its score's terms alone, its mask
head alone, each baseline), the post-processing tables, the ROC curves, each video's score over time, the worst
frames, the pixel and region metrics, and the protocol. The page is XHTML-compatible markup (every tag closed,
every text escaped) so an XML parser can check it.

The alarm threshold: a report with an `alarm` section (`threshold.section`) gets a table of its numbers beside
the headline metrics (the threshold, how it was calibrated, and what it gives on the test set, as report.json has
them), or the reason there is none; an older report's `threshold` entry (a number, or {'value': ..., 'rule': ...})
is stated beside the headline. The line itself is drawn into plots/<video>.png by whoever draws those
(`diagnostics.video_plots`), since the page only embeds them.
"""

import base64
import html
import os
from typing import Any

from maskedskip_jax import atomic
from maskedskip_jax.eval import collect as eval_collect
from maskedskip_jax.eval import report as eval_report

FILENAME = "report.html"
# Protocol entries shown in this order when present; anything not listed (and not shown elsewhere) follows.
_PROTOCOL = tuple(
  "dataset variant checkpoint checkpoint_step checkpoint_selection postprocess scoring frame_score baselines_protocol "
  "temporal image_size channels dtype batch_size compile_seconds scoring_seconds frames_per_second".split()
)
# Shown in their own sections, or only a machine reads them.
_ELSEWHERE = set(
  "frame_auc_micro frame_auc_macro eer average_precision per_video_auc baselines score_components mask_head_score "
  "pixel postprocess_table postprocess_table_markdown postprocess_tables markdown threshold alarm num_frames "
  "num_videos unlabelled_videos macro_policy notes num_anomalous_frames eer_threshold".split()
)
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1em; margin-bottom: 0.3em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.model td { font-weight: bold; background: #eef4fb; }
.note { color: #555; font-size: 0.9em; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
"""


def _e(x) -> str:
  return html.escape(str(x), quote=True)


def _image(path: str, alt: str) -> str:
  with open(path, "rb") as f:
    data = base64.b64encode(f.read()).decode("ascii")
  return f'<img src="data:image/png;base64,{data}" alt="{_e(alt)}" />'


def _threshold(report: dict[str, Any]) -> str | None:
  alarm = report.get("alarm") or {}
  if alarm.get("threshold") is not None:
    return (
      f"alarm threshold {alarm['threshold']:.6g} (on the {alarm['score']} score, {alarm['postprocess']}; "
      f"{alarm['false_alarm_rate'] * 100:g}% of held-out normal frames above it)"
    )
  t = report.get("threshold")
  if t is None:
    return None
  value, rule = (t.get("value"), t.get("rule")) if isinstance(t, dict) else (t, None)
  text = f"{value:.6g}" if isinstance(value, float) else str(value)
  return f"alarm threshold {text}" + (f" ({rule})" if rule else "")


def _value(x) -> str:
  """One report value as markup: floats to 6 significant digits, long lists counted, dicts as tables."""
  if isinstance(x, dict):
    return _table([(k, _value(v)) for k, v in x.items()])
  if isinstance(x, float):
    return _e(f"{x:.6g}")
  if isinstance(x, list):
    return _e(", ".join(str(v) for v in x)) if len(x) <= 16 else _e(f"{len(x)} values")
  return _e("n/a" if x is None else x)


def _table(rows) -> str:
  """(key, value markup) rows as a two-column table, the keys escaped here."""
  body = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows)
  return f"<table>{body}</table>"


def _metric_rows(rows, first: str, model_row: int | None = None) -> str:
  """A table of (name, headline metrics) rows, the metrics as `eval_report.cell` prints them; `model_row` stands out."""
  head = "".join(f"<th>{_e(h)}</th>" for h in (first, *eval_report.HEADLINE_HEADERS))
  body = []
  for i, (name, metrics) in enumerate(rows):
    cls = ' class="model"' if i == model_row else ""
    cells = "".join(f'<td class="num">{_e(eval_report.cell(metrics.get(k)))}</td>' for k in eval_report.HEADLINE)
    body.append(f"<tr{cls}><td>{_e(name)}</td>{cells}</tr>")
  return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _headline(report: dict[str, Any]) -> list[str]:
  rows = []
  if "frame_auc_micro" in report:
    rows.append((f"model ({report['variant']})" if report.get("variant") else "model", report))
  rows += [(f"{name} alone", m) for name, m in (report.get("score_components") or {}).items()]
  if report.get("mask_head_score"):
    rows.append(("mask head alone (no post-processing)", report["mask_head_score"]))
  rows += [(f"{name} baseline", m) for name, m in (report.get("baselines") or {}).items()]
  if not rows:
    return []
  header = f"frame scores ({report.get('postprocess', 'none')})"
  out = ["<h2>Headline metrics</h2>", _metric_rows(rows, header, 0 if "frame_auc_micro" in report else None)]
  counts = []
  if "num_frames" in report:
    anomalous = report.get("num_anomalous_frames")
    counts.append(f"{report['num_frames']} frames" + (f" ({anomalous} anomalous)" if anomalous is not None else ""))
  if "num_videos" in report:
    counts.append(f"{report['num_videos']} video{'' if report['num_videos'] == 1 else 's'}")
  notes = [
    f"Labelled test set: {', '.join(counts)}." if counts else "",
    "AUC and AP: higher is better; EER: lower is better.",
  ]
  if report.get("eer_threshold") is not None:
    notes.append(f"The model's EER is reached at score {report['eer_threshold']:.6g}.")
  notes += report.get("notes") or []
  if report.get("unlabelled_videos"):
    notes.append(f"Unlabelled, not measured: {', '.join(report['unlabelled_videos'])}.")
  if report.get("macro_policy"):
    notes.append(f"Macro AUC: {report['macro_policy'].removesuffix(': []')}.")  # no names: no empty list shown
  threshold = _threshold(report)
  if threshold:
    notes.append(f"{threshold[0].upper()}{threshold[1:]}.")
  out += [f'<p class="note">{_e(n)}</p>' for n in notes if n]
  return out


# The alarm's numbers on the test set, in this order, with what each row says and how it is shown: fractions as the
# headline table shows its metrics (`eval_report.cell`), counts as they are.
_ALARM_TEST = (
  ("precision", "frame precision", eval_report.cell),
  ("recall", "frame recall", eval_report.cell),
  ("f1", "frame F1", eval_report.cell),
  ("false_positive_rate", "frame false-positive rate", eval_report.cell),
  ("flagged_frames", "frames flagged", str),
  ("events", "alarm events", str),
  ("false_alarms", "false alarms (events overlapping no anomalous frame)", str),
  ("false_alarms_per_hour", "false alarms per hour", lambda x: f"{x:.1f}"),
  ("hours", "labelled test footage", lambda h: f"{h:.4g} h ({h * 3600:.0f} s)"),
  ("anomaly_intervals_hit", "anomalous intervals hit", str),
  ("anomaly_intervals", "anomalous intervals", str),
)


def _patch(patch) -> str:
  """The alarm score's patch as the page states it; a score without patch pooling (AED-MAE's) has none."""
  return "" if patch is None else f" (patch {patch})"


def _alarm(report: dict[str, Any]) -> list[str]:
  alarm = report.get("alarm")
  if not alarm:
    return []
  out = ["<h2>Alarm threshold</h2>"]
  if alarm.get("threshold") is None:
    return out + [f'<p class="note">No alarm threshold: {_e(alarm.get("reason", "not calibrated"))}.</p>']
  c, t = alarm["calibration"], alarm.get("test") or {}
  rate = alarm["false_alarm_rate"]
  rows = [
    ("threshold", _value(alarm["threshold"])),
    ("score", _e(f"{alarm['score']}{_patch(alarm.get('patch'))}, {alarm['postprocess']}")),
    ("false-alarm rate asked", _e(f"{rate:g} ({rate * 100:g}% of held-out normal frames)")),
    ("held-out normal frames", _value(c.get("held_out_frames"))),
    ("held-out videos", _value(c.get("videos"))),
  ]
  rows += [(text, _e("n/a" if t[k] is None else show(t[k]))) for k, text, show in _ALARM_TEST if k in t]
  rule = f"at least {alarm['min_event_seconds']:g} s; gaps up to {alarm['merge_gap_seconds']:g} s merged"
  rows += [("event rule", _e(rule)), ("frame rate", _e(f"{c.get('fps')} ({c.get('fps_source')})"))]
  notes = [c.get("quantile_rule", ""), t.get("protocol", ""), c.get("warning") or ""]
  return out + [_table(rows)] + [f'<p class="note">{_e(n)}</p>' for n in notes if n]


def _tables(report: dict[str, Any]) -> list[str]:
  out = []
  if report.get("postprocess_table"):
    out += [
      "<h2>Post-processing</h2>",
      '<p class="note">The model\'s raw scores under each post-processing.</p>',
      _metric_rows([(r["postprocess"], r) for r in report["postprocess_table"]], "post-processing"),
    ]
  if report.get("postprocess_tables"):
    out.append("<h2>Post-processing</h2>")
    for name, rows in report["postprocess_tables"].items():
      out += [f"<h3>{_e(name)}</h3>", _metric_rows([(r["postprocess"], r) for r in rows], "post-processing")]
  return out


def _video_index(shown, aucs) -> str:
  """An index of the videos, each linking to its plot, with its AUC: the worst ones are found at a glance."""
  cells = "".join(
    f'<tr><td><a href="#video-{i}">{_e(name)}</a></td><td class="num">{_e(eval_report.cell(aucs.get(name)))}</td></tr>'
    for i, (name, _) in enumerate(shown)
  )
  return f"<table><tr><th>video</th><th>frame AUC</th></tr>{cells}</table>"


def _videos(folder: str, report: dict[str, Any], videos) -> list[str]:
  if videos is None:
    videos = list(report.get("per_video_auc") or {}) + list(report.get("unlabelled_videos") or [])
  shown = [(v, os.path.join(folder, "plots", f"{eval_collect.safe_name(v)}.png")) for v in videos]
  shown = [(v, p) for v, p in shown if os.path.isfile(p)]
  if not shown:
    return []
  aucs = report.get("per_video_auc") or {}
  note = (
    "Each video's headline score over time (beside the best baseline's where baselines were scored: both are "
    "then min-max scaled within the video); labelled-anomalous frames shaded red. Per-video AUC: n/a where a "
    "video has one class only or no labels."
  )
  threshold = _threshold(report)
  if threshold and report.get("alarm"):
    note += (
      f" The {threshold} is drawn on the headline curve when that is the alarm's score, else in a panel below it "
      "with the alarm score."
    )
  elif threshold:
    note += f" The {threshold} applies to the headline score."
  out = ["<h2>Scores over time</h2>", f'<p class="note">{_e(note)}</p>', _video_index(shown, aucs)]
  for i, (name, path) in enumerate(shown):
    out += [
      f'<h3 id="video-{i}">{_e(name)}: AUC {_e(eval_report.cell(aucs.get(name)))}</h3>',
      _image(path, f"{name} score over time"),
    ]
  return out


def _pixel(report: dict[str, Any]) -> list[str]:
  p = report.get("pixel")
  if not p:
    return []
  rows = [(k, _e(eval_report.cell(p[k]))) for k in ("pixel_auroc", "rbdc", "tbdc") if k in p]
  rows += [(k, _value(p[k])) for k in ("resolution", "num_videos_with_masks", "method", "error_bound") if k in p]
  return ["<h2>Pixel and region metrics</h2>", _table(rows), f'<p class="note">{_e(p.get("protocol", ""))}</p>']


def _protocol(report: dict[str, Any]) -> list[str]:
  keys = [k for k in _PROTOCOL if k in report] + [k for k in report if k not in _PROTOCOL and k not in _ELSEWHERE]
  return ["<h2>Protocol</h2>", _table([(k, _value(report[k])) for k in keys])] if keys else []


def page(folder: str, report: dict[str, Any], videos=None) -> str:
  """The page's markup for `report` and the figures in `folder` (roc.png, plots/, worst_frames.png)."""
  kind = "Evaluation" if "frame_auc_micro" in report else "Baselines"
  title = f"{kind}: {report.get('dataset', 'test set')}" + (f", {report['variant']}" if report.get("variant") else "")
  body = [f"<h1>{_e(title)}</h1>"]
  if report.get("checkpoint_step") is not None:
    body.append(
      f'<p class="note">Checkpoint step {_e(report["checkpoint_step"])}: '
      f"{_e(report.get('checkpoint_selection', ''))}</p>"
    )
  body += _headline(report) + _alarm(report) + _tables(report)
  if os.path.isfile(os.path.join(folder, "roc.png")):
    body += ["<h2>ROC curves</h2>", _image(os.path.join(folder, "roc.png"), "frame-level ROC curves")]
  body += _videos(folder, report, videos)
  if os.path.isfile(os.path.join(folder, "worst_frames.png")):
    body += [
      "<h2>Worst misses</h2>",
      '<p class="note">The labelled-anomalous frames the model scored lowest: '
      "input, reconstruction, and its error map.</p>",
      _image(os.path.join(folder, "worst_frames.png"), "worst-scored anomalous frames"),
    ]
  body += _pixel(report) + _protocol(report)
  return (
    '<!DOCTYPE html>\n<html xmlns="http://www.w3.org/1999/xhtml" lang="en"><head><meta charset="utf-8" />'
    f"<title>{_e(title)}</title><style>{_STYLE}</style></head>"
    "<body>\n" + "\n".join(body) + "\n</body></html>\n"
  )


def write(out_dir: str, report: dict[str, Any], videos=None) -> str:
  """Writes `out_dir`/report.html from `report` and the figures already in `out_dir`; returns its path.

  `videos`: the names in test-set order (default: the report's per-video AUCs, then its unlabelled videos).
  """
  path = os.path.join(out_dir, FILENAME)
  atomic.write_text(path, page(out_dir, report, videos))
  return path
