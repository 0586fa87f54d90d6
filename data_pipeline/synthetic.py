"""A procedural surveillance dataset with labelled anomalies, written in the generic layout.

A fixed camera watches people walk along a paved walkway (training videos: only that). Test videos add, for a
stretch of frames, one or two anomalies: a fast cyclist, a boxy cart, a person cutting across the near lawn at
a jog, or a skateboarder gliding along the walkway. Each test video gets per-frame labels and the anomalous
object's pixel masks. Everything is drawn from numpy Generators seeded by (seed, split, video), so the same
seed gives byte-identical files whatever the number of worker processes.

  python -m data_pipeline.synthetic --out /tmp/synth --seed 0
"""

import argparse
import concurrent.futures
import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time

import cv2
import numpy as np

from data_pipeline import synthetic_scene as sc
from data_pipeline import synthetic_tracks
from data_pipeline.errors import UserError

VERSION = 4  # bump when the pictures change, so ensure() caches are not reused across versions
DEFAULTS = dict(seed=0, num_train=10, num_test=8, frames_per_video=120, height=120, width=160)


def render_video(scene, tracks, frames, rng):
  """Frames uint8 (n, H, W), anomaly masks uint8 (n, H, W), and each track's visible frames."""
  height, width = scene.height, scene.width
  xs = np.arange(width, dtype=np.float32) / width - 0.5
  period, phase = rng.uniform(150, 400, 2), rng.uniform(0, 2 * np.pi, 2)
  amp = rng.uniform(0.02, 0.05), rng.uniform(0.0, 0.06)
  out = np.empty((frames, height, width), np.uint8)
  masks = np.zeros((frames, height, width), np.uint8)
  seen = [[] for _ in tracks]
  for t in range(frames):
    frame = scene.background.copy()
    live = [(k, t - tr.start) for k, tr in enumerate(tracks) if 0 <= t - tr.start < len(tr.x)]
    for k, i in sorted(live, key=lambda item: tracks[item[0]].y[item[1]]):  # far figures first
      tr = tracks[k]
      x, y, size = tr.x[i], tr.y[i], float(sc.figure_height(tr.y[i], height))
      shadow = [("ellipse", [(0.05, 0.0)], (0.32 if tr.kind != "cart" else 0.85, 0.06), 0)]
      sc.composite(frame, sc.rasterize(shadow, x, y, size, tr.direction), 0.3)
      if tr.kind == "cart":
        sprite = sc.cart(tr.colors)
      elif tr.kind == "cyclist":
        sprite = sc.cyclist(tr.phase[i], tr.colors)
      elif tr.kind == "skater":
        sprite = sc.skater(tr.phase[i], tr.colors)
      else:
        sprite = sc.person(tr.phase[i], tr.colors)
      drawn = sc.composite(frame, sc.rasterize(sprite, x, y, size, tr.direction))
      if drawn is not None:
        rows, cols, alpha = drawn
        if (alpha >= 0.5).any():
          seen[k].append(t)
        # A nearer normal figure hides what it covers; the mask holds only visible anomaly pixels.
        masks[t, rows, cols] = np.where(alpha >= 0.5, int(tr.anomalous), masks[t, rows, cols])
    # Slow illumination drift: a global gain plus a gentle left-right gradient (passing clouds).
    gain = 1 + amp[0] * np.sin(2 * np.pi * t / period[0] + phase[0])
    tilt = amp[1] * np.sin(2 * np.pi * t / period[1] + phase[1]) * xs
    frame = frame * (gain + tilt) + rng.normal(0.0, 2.5, frame.shape)
    out[t] = np.clip(np.round(frame), 0, 255).astype(np.uint8)
  return out, masks, seen


def _write_video(job):
  """Renders one video into the (temporary) dataset folder; returns its anomaly summary."""
  root, split, index, params = job
  seed, frames, height, width = (params[k] for k in ("seed", "frames_per_video", "height", "width"))
  cv2.setNumThreads(1)
  scene = sc.Scene(height, width, np.random.default_rng(np.random.SeedSequence([seed, 0])))
  tracks = synthetic_tracks.plan_video(seed, split, index, frames, height, width)
  rng = np.random.default_rng(np.random.SeedSequence([seed, 3 if split == "train" else 4, index]))
  video, masks, seen = render_video(scene, tracks, frames, rng)
  name = f"{split}_{index:02d}"
  folder = os.path.join(root, split, name)
  os.makedirs(folder)
  digits = max(3, len(str(frames - 1)))
  for t, frame in enumerate(video):
    ok, png = cv2.imencode(".png", frame, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    assert ok, "PNG encoding failed"
    with open(os.path.join(folder, f"{t:0{digits}d}.png"), "wb") as f:
      f.write(png.tobytes())
  if split == "train":
    assert not masks.any(), "a training video got an anomaly"
    return name, []
  labels = masks.reshape(frames, -1).any(1).astype(np.uint8)
  with open(os.path.join(root, split, name + ".txt"), "w") as f:
    f.write("".join(f"{v}\n" for v in labels))
  np.save(os.path.join(root, split, name + "_mask.npy"), masks)
  # Anomalies never overlap in time, so a track's labelled frames are the ones it shows in.
  spans = [(tr.kind, [t for t in ts if labels[t]]) for tr, ts in zip(tracks, seen) if tr.anomalous]
  events = [dict(kind=kind, first_frame=ts[0], last_frame=ts[-1]) for kind, ts in spans if ts]
  return name, dict(events=events, anomalous_frames=int(labels.sum()))


def _check(params):
  unknown = sorted(set(params) - set(DEFAULTS))
  if unknown:
    raise UserError(f"synthetic dataset: unknown parameter(s) {unknown}; expected some of {sorted(DEFAULTS)}")
  p = dict(DEFAULTS, **params)
  mins = dict(seed=0, num_train=1, num_test=1, frames_per_video=8, height=32, width=32)
  for key, lo in mins.items():
    if not isinstance(p[key], (int, np.integer)) or isinstance(p[key], bool) or p[key] < lo:
      raise UserError(f"synthetic dataset: {key} must be an integer >= {lo}, got {p[key]!r}")
  return {k: int(v) for k, v in p.items()}


def generate(
  root,
  *,
  seed=DEFAULTS["seed"],
  num_train=DEFAULTS["num_train"],
  num_test=DEFAULTS["num_test"],
  frames_per_video=DEFAULTS["frames_per_video"],
  height=DEFAULTS["height"],
  width=DEFAULTS["width"],
  workers=2,
):
  """Writes the dataset to `root` (which must not exist, or be empty) and returns root.

  It is built in a temporary sibling folder and renamed into place when complete. `workers`
  processes render videos in parallel; the files do not depend on it.
  """
  p = _check(
    dict(
      seed=seed, num_train=num_train, num_test=num_test, frames_per_video=frames_per_video, height=height, width=width
    )
  )
  root = os.path.abspath(root)
  if os.path.exists(root) and (not os.path.isdir(root) or os.listdir(root)):
    raise UserError(f"{root}: already exists and is not an empty folder; choose another output folder")
  parent = os.path.dirname(root)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(root)}.tmp-", dir=parent)
  try:
    for split in ("train", "test"):
      os.makedirs(os.path.join(tmp, split))
    jobs = [(tmp, "train", i, p) for i in range(p["num_train"])] + [(tmp, "test", i, p) for i in range(p["num_test"])]
    if workers > 1 and len(jobs) > 1:
      # spawn, not fork: callers often have JAX (multithreaded) loaded.
      ctx = multiprocessing.get_context("spawn")
      with concurrent.futures.ProcessPoolExecutor(min(workers, len(jobs)), mp_context=ctx) as pool:
        results = list(pool.map(_write_video, jobs))
    else:
      results = [_write_video(job) for job in jobs]
    meta = dict(
      generator="data_pipeline.synthetic",
      version=VERSION,
      layout="generic",
      params=p,
      train=[name for name, _ in results[: p["num_train"]]],
      test={name: info for name, info in results[p["num_train"] :]},
    )
    with open(os.path.join(tmp, "synthetic.json"), "w") as f:
      json.dump(meta, f, indent=1, sort_keys=True)
    os.replace(tmp, root)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return root


def _is_complete(root, params):
  try:
    with open(os.path.join(root, "synthetic.json")) as f:
      meta = json.load(f)
  except (OSError, ValueError):
    return False
  return meta.get("version") == VERSION and meta.get("params") == params


def ensure(cache_dir, *, workers=2, **params):
  """Returns `<cache_dir>/synthetic-<hash of params>`, generating it the first time.

  Only a complete dataset ever carries the final name (it is renamed into place), so a
  generation killed half way leaves just a hidden temporary folder, which is ignored.
  """
  p = _check(params)
  key = hashlib.sha256(json.dumps(dict(p, version=VERSION), sort_keys=True).encode()).hexdigest()[:12]
  root = os.path.join(os.path.abspath(cache_dir), f"synthetic-{key}")
  if _is_complete(root, p):
    return root
  if os.path.exists(root):  # not ours to trust: a copy or an older layout; set it aside first
    stale = root + f".stale-{os.getpid()}"
    os.replace(root, stale)
    shutil.rmtree(stale, ignore_errors=True)
  try:
    return generate(root, workers=workers, **p)
  except (UserError, OSError):
    if _is_complete(root, p):  # another process finished the same dataset first
      return root
    raise


def main(argv=None):
  parser = argparse.ArgumentParser(prog="python -m data_pipeline.synthetic", description=__doc__.split("\n")[0])
  parser.add_argument("--out", required=True, help="output folder (must not exist yet, or be empty)")
  for key, value in DEFAULTS.items():
    parser.add_argument("--" + key.replace("_", "-"), type=int, default=value)
  parser.add_argument("--workers", type=int, default=2, help="processes (output does not depend on it)")
  args = vars(parser.parse_args(argv))
  out, workers = args.pop("out"), args.pop("workers")
  begin = time.perf_counter()
  try:
    generate(out, workers=workers, **args)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(f"wrote {out} in {time.perf_counter() - begin:.1f} s")
  return 0


if __name__ == "__main__":
  sys.exit(main())
