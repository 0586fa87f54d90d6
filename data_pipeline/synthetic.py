"""A procedural surveillance dataset with labelled anomalies, written in the generic layout.

A fixed camera watches people walk along a paved walkway (training videos: only that). Test
videos add, for a stretch of frames, one or two anomalies: a fast cyclist, a boxy cart, a
person cutting across the near lawn at a jog, or a skateboarder gliding along the walkway. Each test video gets per-frame labels and the anomalous object's
pixel masks. Everything is drawn from numpy Generators seeded by (seed, split, video), so the
same seed gives byte-identical files whatever the number of worker processes.

  python -m data_pipeline.synthetic --out /tmp/synth --seed 0
"""

import argparse
import concurrent.futures
import dataclasses
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
from maskedskip_jax.errors import UserError

VERSION = 4  # bump when the pictures change, so ensure() caches are not reused across versions
DEFAULTS = dict(seed=0, num_train=10, num_test=8, frames_per_video=120, height=120, width=160)
ANOMALY_KINDS = ("cyclist", "cart", "off_path", "skater")
_CROWD = (1.5, 5.0)  # range of the per-video mean number of walkers in view
_WALK_SPEED = (0.065, 0.1)  # walker speed range, in figure heights per frame
# People who leave the path jog across the near lawn. At a walking pace a lawn-walker differs
# from a walkway-walker only in where it is, and MaskedSkipUNet cannot see that: its skips read
# the same pixel in frames t-1 and t+1 (SPEC section 1), so anything slow is rebuilt from its
# neighbours whatever it is (measured: per-video AUC 0.35-0.75 for walking lawn-crossers,
# several only a few pixels tall on the far lawn).
# A skater is UCSD Ped2's other common anomaly: a person who looks like any walker (the board is a
# few pixels) and differs only in moving 3-4x faster, so only a model that watches motion can flag it,
# as on the real data where a UNet copies such a figure through its skips.
_SPEED = dict(cyclist=(0.28, 0.38), cart=(0.12, 0.2), off_path=(0.2, 0.28), skater=(0.24, 0.34))
_STRIDE = dict(walker=0.41, off_path=0.7)  # step length in figure heights: ties leg swing to speed
# Skaters keep to the near half of the walkway: on the far half a figure is ~5 px tall at the 64x64 the
# default config trains at, and a glide there is not visible to a person looking at the frames either.
_REGION = dict(off_path="lower_lawn", skater="near_walkway")
_GAIT = dict(cyclist=0.35, skater=0.12)  # leg motion per step relative to walking: pedalling, an occasional push


@dataclasses.dataclass
class Track:
  """One figure's path: foot position and gait phase for frames start, start+1, ..."""
  kind: str  # 'walker' or one of ANOMALY_KINDS
  start: int
  direction: int
  colors: tuple
  x: list = dataclasses.field(default_factory=list)
  y: list = dataclasses.field(default_factory=list)
  phase: list = dataclasses.field(default_factory=list)

  @property
  def anomalous(self):
    return self.kind != "walker"


def _colors(rng, kind):
  if kind == "cart":
    body = rng.uniform(50, 100) if rng.random() < 0.5 else rng.uniform(185, 225)
    return (body, body * 0.45, 0.0)
  # Dark clothes vanish on the dark lawn; a person there should be findable by looking.
  light = 0.5 if kind == "off_path" else 0.3
  shirt = rng.uniform(150, 215) if rng.random() < light else rng.uniform(25, 90)
  return (rng.uniform(20, 110), shirt, rng.uniform(40, 120))


def _simulate(rng, kind, start, height, width, outside=0.6):
  """Walks one figure from a frame edge across the frame until it has left it."""
  direction = 1 if rng.random() < 0.5 else -1
  region = _REGION.get(kind, "walkway")
  size = lambda y: float(sc.figure_height(y, height))
  lo, hi = sc.foot_band(0.0 if direction > 0 else width, height, width, region)
  y = float(rng.uniform(lo, hi))
  x = -outside * size(y) if direction > 0 else width + outside * size(y)
  speed = rng.uniform(*_SPEED.get(kind, _WALK_SPEED))
  drift = rng.uniform(-0.02, 0.02) if region == "walkway" else 0.0
  track = Track(kind, start, direction, _colors(rng, kind))
  phase = rng.uniform(0, 2 * np.pi)
  while -size(y) <= x <= width + size(y):
    track.x.append(x)
    track.y.append(y)
    track.phase.append(phase)
    step = speed * size(y)
    x += direction * step
    y += drift * size(y)
    lo, hi = sc.foot_band(x, height, width, region)
    if not lo <= y <= hi:
      drift = -drift
      y = float(np.clip(y, lo, hi))
    phase += np.pi * step / (_STRIDE.get(kind, _STRIDE["walker"]) * size(y)) * _GAIT.get(kind, 1.0)
  return track


def plan_video(seed, split, index, frames, height, width):
  """Tracks of one video: Poisson arrivals of walkers, plus anomaly events in test videos."""
  rng = np.random.default_rng(np.random.SeedSequence([seed, 1 if split == "train" else 2, index]))
  crossing = width / (np.mean(_WALK_SPEED) * float(sc.figure_height(0.65 * height, height)))
  # Crowds differ between videos, so "more things moving" alone is a weak anomaly cue.
  rate = rng.uniform(*_CROWD) / crossing
  tracks, t = [], -2.5 * crossing
  while True:
    t += rng.exponential(1 / rate)
    if t >= frames:
      break
    tracks.append(_simulate(rng, "walker", int(np.floor(t)), height, width))
  if split == "test":
    # Anomalies start after some normal frames and enter already half in view, so every test
    # video has both classes; the kind cycles so that a few videos cover all kinds.
    start = int(rng.integers(max(1, int(0.12 * frames)), max(2, int(0.45 * frames))))
    kinds = [ANOMALY_KINDS[index % len(ANOMALY_KINDS)]]
    if rng.random() < 0.35:
      kinds.append(ANOMALY_KINDS[(index + 1 + rng.integers(2)) % len(ANOMALY_KINDS)])
    for kind in kinds:
      track = _simulate(rng, kind, start, height, width, outside=0.2)
      tracks.append(track)
      start += len(track.x) + int(rng.integers(5, 20))
      if start >= frames - 2:
        break
  return tracks


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
  tracks = plan_video(seed, split, index, frames, height, width)
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


def generate(root, *, seed=DEFAULTS["seed"], num_train=DEFAULTS["num_train"], num_test=DEFAULTS["num_test"],
             frames_per_video=DEFAULTS["frames_per_video"], height=DEFAULTS["height"], width=DEFAULTS["width"],
             workers=2):
  """Writes the dataset to `root` (which must not exist, or be empty) and returns root.

  It is built in a temporary sibling folder and renamed into place when complete. `workers`
  processes render videos in parallel; the files do not depend on it.
  """
  p = _check(dict(seed=seed, num_train=num_train, num_test=num_test, frames_per_video=frames_per_video,
                  height=height, width=width))
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
    meta = dict(generator="data_pipeline.synthetic", version=VERSION, layout="generic", params=p,
                train=[name for name, _ in results[:p["num_train"]]],
                test={name: info for name, info in results[p["num_train"]:]})
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
