r"""Which ways of turning the reconstruction error map into a frame score help, measured on a dev set.

  python3 benchmarks/score_variants.py --config=configs/ped2_cpu.py --workdir=runs/ped2_cpu \
      --json=runs/ped2_cpu/score_variants.json

Not a speed figure. The run's newest checkpoint (maskedskip_jax.eval.evaluate.load_model) streams the training and
test splits through streaming.StreamingScorer at full resolution, and each test frame's error map is turned
into a frame score several ways:

  patch{8,16,24,32}       the project's score, scoring.frame_scores (max patch mean, aligned + offset grids);
  minus_mean_p{16,32}     max(map - mean training map, 0), pooled like the project's score;
  div_mean_p{16,32}       map / (mean training map + 0.01), pooled;
  pixel_z_p{16,32}        (map - per-pixel training mean) / (per-pixel training std + 0.01), pooled;
  patch_z_p{16,32}        aligned-grid patch means standardised by each patch position's mean and std over the
                          training frames (+ 1e-3); the frame score is the largest.

Every reference statistic comes from the training videos, never from the test videos, so a variant could be
deployed as it stands. Each variant is reported as frame AUC micro and macro, raw ('none') and with the paper's
17-frame median, plus per-video AUC, through postprocess.py and metrics.frame_metrics (the calls
maskedskip_jax.eval.evaluate makes), so 'patch16' is the evaluation's reconstruction score (report.json's
frame_auc_micro with eval.hybrid_beta=0, or its score_components.reconstruction). The eval.hybrid_* keys do not
apply: only the reconstruction error is scored here.

Use it on dev videos only (configs/ped2_cpu.py's ped2_dev). Nothing may be *chosen* from this table on a test
set that is reported as a result: picking the best of twelve scores on the test videos is fitting to them.
Prints a markdown table; writes the figures to --json (default WORKDIR/score_variants.json) by temp + rename.
"""

import json
import os
import sys
import time

from absl import app
from absl import flags
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [p for p in (ROOT,) if p not in sys.path]

import jax.numpy as jnp  # pylint: disable=g-import-not-at-top,wrong-import-position

from maskedskip_jax import app as app_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from maskedskip_jax import validation  # pylint: disable=g-import-not-at-top,wrong-import-position
from maskedskip_jax.errors import UserError  # pylint: disable=g-import-not-at-top,wrong-import-position
from maskedskip_jax.eval import postprocess as postprocess_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from maskedskip_jax.eval import report as eval_report  # pylint: disable=g-import-not-at-top,wrong-import-position
from maskedskip_jax.eval import streaming  # pylint: disable=g-import-not-at-top,wrong-import-position
from maskedskip_jax.nn import scoring  # pylint: disable=g-import-not-at-top,wrong-import-position
from maskedskip_jax.train import inputs as train_data  # pylint: disable=g-import-not-at-top,wrong-import-position

_CONFIG = None  # defined in __main__, after the keys are checked: config_flags applies overrides then
_JSON = flags.DEFINE_string("json", None, "Where the figures go; default WORKDIR/score_variants.json.")

PLAIN_PATCHES = (8, 16, 24, 32)
NORM_PATCHES = (16, 32)
POSTPROCESS = ("none", "median:window=17")
# Floors under the divisors: a pixel (or patch) the model reconstructs perfectly on every training frame has
# a zero mean or std, and dividing by it would let one noisy test pixel decide the frame. 0.01 is about a third
# of a typical mean error on ped2_dev; patch means vary less than pixels, hence the smaller floor for patch_z.
PIXEL_FLOOR = 0.01
PATCH_FLOOR = 1e-3


def _aligned_patch_means(maps: np.ndarray, patch: int) -> np.ndarray:
  """(n, H, W) -> (n, H // patch, W // patch) means of the full tiles on the grid aligned with the frame."""
  n, h, w = maps.shape
  nh, nw = h // patch, w // patch
  return maps[:, : nh * patch, : nw * patch].reshape(n, nh, patch, nw, patch).mean(axis=(2, 4))


class _Moments:
  """Running float64 sum and sum of squares over frames: mean and (population) std without keeping the frames."""

  def __init__(self):
    self.n, self.s, self.ss = 0, 0.0, 0.0

  def add(self, x: np.ndarray) -> None:  # x: (n, ...) in float32; float64 here so ~1e3 frames sum exactly enough
    x = np.asarray(x, np.float64)
    self.n += len(x)
    self.s = self.s + x.sum(axis=0)
    self.ss = self.ss + np.square(x).sum(axis=0)

  def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
    mean = self.s / self.n
    return mean, np.sqrt(np.maximum(self.ss / self.n - np.square(mean), 0.0))


def _stream_maps(scorer, store, videos):
  """Yields (index into `videos`, (n, H, W) float32 full-resolution score maps) one video at a time."""
  current, maps = 0, []
  for item in scorer.stream(store.video_frames(v) for v in videos):
    if item.video != current and maps:
      yield current, np.stack(maps)
      maps = []
    current = item.video
    maps.append(item.score_map)
  if maps:
    yield current, np.stack(maps)


def training_statistics(scorer, store) -> dict:
  """Per-pixel mean/std of the training maps and, per patch size, each aligned patch position's mean/std.

  The training maps are reduced video by video and dropped: only these statistics are needed.
  """
  pixel, patches = _Moments(), {p: _Moments() for p in NORM_PATCHES}
  for _, maps in _stream_maps(scorer, store, range(store.num_videos)):
    pixel.add(maps)
    for p, moments in patches.items():
      moments.add(_aligned_patch_means(maps, p))
  return {"frames": pixel.n, "pixel": pixel.mean_std(), "patch": {p: m.mean_std() for p, m in patches.items()}}


def _pooled(maps: np.ndarray, patch: int) -> np.ndarray:
  # The project's pooling, called as the evaluation's step calls it, so 'patch16' is the evaluation's score.
  return np.asarray(scoring.frame_scores(jnp.asarray(maps, jnp.float32), patch), np.float64)


def variants(stats: dict) -> dict:
  """{name: (description, maps (n, H, W) -> (n,) frame scores)}, every reference statistic from training."""
  mean, std = stats["pixel"]
  out = {
    f"patch{p}": (f"scoring.frame_scores at patch {p} (the project's score)", lambda m, p=p: _pooled(m, p))
    for p in PLAIN_PATCHES
  }
  for p in NORM_PATCHES:
    out[f"minus_mean_p{p}"] = (
      f"max(map - mean training map, 0), pooled at {p}",
      lambda m, p=p: _pooled(np.maximum(m - mean, 0.0), p),
    )
    out[f"div_mean_p{p}"] = (
      f"map / (mean training map + {PIXEL_FLOOR}), pooled at {p}",
      lambda m, p=p: _pooled(m / (mean + PIXEL_FLOOR), p),
    )
    out[f"pixel_z_p{p}"] = (
      f"(map - training mean) / (training std + {PIXEL_FLOOR}) per pixel, pooled at {p}",
      lambda m, p=p: _pooled((m - mean) / (std + PIXEL_FLOOR), p),
    )
  for p in NORM_PATCHES:
    mu, sd = stats["patch"][p]
    out[f"patch_z_p{p}"] = (
      f"max over aligned {p}x{p} patches of (patch mean - its training mean) / (its training std + {PATCH_FLOOR})",
      lambda m, p=p, mu=mu, sd=sd: ((_aligned_patch_means(m, p) - mu) / (sd + PATCH_FLOOR)).max(axis=(1, 2)),
    )
  return out


def evaluate_variant(scores, labels, names) -> dict:
  """Per post-processing: frame AUC micro, macro and per video, as maskedskip_jax.eval.evaluate computes them."""
  out = {}
  known = list(range(len(scores)))  # only labelled videos were scored
  for spec in POSTPROCESS:
    steps = postprocess_lib.parse_chain(spec)
    # eval_report.frame_results is postprocess.postprocess then metrics.frame_metrics: the evaluation's own call.
    result = eval_report.frame_results(scores, labels, names, known, steps)[1]
    out[postprocess_lib.describe(steps)] = {
      "frame_auc_micro": result["frame_auc_micro"],
      "frame_auc_macro": result["frame_auc_macro"],
      "per_video_auc": dict(zip(result["video_names"], result["per_video_auc"])),
    }
  return out


def markdown(results: dict) -> str:
  none, med = (postprocess_lib.describe(postprocess_lib.parse_chain(s)) for s in POSTPROCESS)
  lines = [
    "| variant | micro none | macro none | micro median17 | macro median17 | per-video none |",
    "|---|---|---|---|---|---|",
  ]
  for name, r in results.items():
    per = ", ".join(f"{v} {eval_report.cell(a)}" for v, a in r[none]["per_video_auc"].items())
    cells = [eval_report.cell(r[k]["frame_auc_" + m]) for k in (none, med) for m in ("micro", "macro")]
    lines.append(f"| {name} | {' | '.join(cells)} | {per} |")
  return "\n".join(lines)


def write_json(path: str, record: dict) -> None:
  """Temp file + rename, so an interrupted run never leaves a half-written report."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = f"{path}.tmp-{os.getpid()}"
  try:
    with open(tmp, "w") as f:
      json.dump(record, f, indent=2)
      f.write("\n")
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def run(config, workdir: str, json_path: str) -> dict:
  from maskedskip_jax.eval import evaluate  # pylint: disable=g-import-not-at-top  (pulls in training, orbax)
  from maskedskip_jax.train import compile_cache  # pylint: disable=g-import-not-at-top

  validation.validate(config)
  compile_cache.enable(config.train.compilation_cache_dir)
  model, variables, step, source = evaluate.load_model(config, workdir)
  size = tuple(config.data.image_size)
  s = eval_report.settings(config)
  scorer = streaming.StreamingScorer(
    model, variables, size, batch_size=s["batch_size"], patch=s["patch"], map_size=size
  )
  begin = time.perf_counter()
  train_store = train_data.load_split(config, workdir, "train", all_processes=False)
  stats = training_statistics(scorer, train_store)
  print(
    f"training maps: {stats['frames']} frames of {train_store.num_videos} videos ({time.perf_counter() - begin:.0f} s)",
    flush=True,
  )
  test = train_data.load_split(config, workdir, "test", all_processes=False)
  known = [v for v in range(test.num_videos) if test.labels(v) is not None]
  if not known:
    raise UserError("the test split has no frame labels; nothing to evaluate against")
  # Test maps are kept (3 ped2_dev videos at 128x192 are ~50 MB): every variant pools the same maps.
  maps = [np.zeros((0, *size), np.float32) for _ in known]  # an empty video streams nothing but keeps its place
  for i, m in _stream_maps(scorer, test, known):
    maps[i] = m
  labels, names = [test.labels(v) for v in known], [test.video_names[v] for v in known]
  print(
    f"test maps: {sum(len(m) for m in maps)} frames of {len(known)} videos ({time.perf_counter() - begin:.0f} s)",
    flush=True,
  )
  table = {}
  for name, (description, score) in variants(stats).items():
    table[name] = {"description": description, **evaluate_variant([score(m) for m in maps], labels, names)}
  text = markdown(table)
  print(text)
  record = {
    "what": "frame-score variants of the reconstruction error map; reference statistics from the training "
    "videos only; for dev sets: choose nothing on reported test data",
    "dataset": config.data.name,
    "data_root": config.data.root,
    "checkpoint": source,
    "checkpoint_step": step,
    "image_size": list(size),
    "channels": model.channels,
    "test_videos": names,
    "test_frames": int(sum(len(m) for m in maps)),
    "unlabelled_test_videos": [test.video_names[v] for v in range(test.num_videos) if v not in known],
    "train_videos": train_store.video_names,
    "train_frames": stats["frames"],
    "postprocess": [postprocess_lib.describe(postprocess_lib.parse_chain(p)) for p in POSTPROCESS],
    "floors": {"pixel": PIXEL_FLOOR, "patch": PATCH_FLOOR},
    "variants": table,
    "table_markdown": text,
    "seconds": round(time.perf_counter() - begin, 1),
  }
  write_json(json_path, record)
  print(f"wrote {json_path}")
  return record


def main(argv) -> None:
  workdir = app_lib.script_workdir(argv)
  json_path = os.path.abspath(os.path.expanduser(_JSON.value or os.path.join(workdir, "score_variants.json")))
  try:
    run(app_lib.load_config(_CONFIG), workdir, json_path)
  except UserError as e:
    app_lib.fail(e)


if __name__ == "__main__":
  _CONFIG = app_lib.define_config_flag(sys.argv, os.path.join(ROOT, "configs", "ped2_cpu.py"))
  app.run(main)
