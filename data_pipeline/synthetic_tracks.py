"""Where the figures of a synthetic video walk: each one's path, speed and gait, frame by frame.

Walkers arrive at random along the walkway; test videos add anomalous figures (ANOMALY_KINDS).
A Track holds a figure's kind, colours, positions and gait phases; `synthetic.render_video` draws it.
Any change here changes the generated videos, so it goes with a bump of `synthetic.VERSION`.
"""

import dataclasses

import numpy as np

from data_pipeline import synthetic_scene as sc

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
