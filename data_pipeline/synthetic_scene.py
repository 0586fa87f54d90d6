"""The procedural scene: a fixed grey camera looking down at a paved walkway between lawns.

Geometry is in fractions of the frame, so every frame size shows the same picture. Figures
are drawn 4x supersampled into small patches and box-filtered down: they then move by
sub-pixel amounts like real footage, instead of jumping whole pixels (an easy cue).
Sprite coordinates are in units of the figure's height, origin at its feet, y up = negative.
"""

import cv2
import numpy as np

_SS = 4  # supersampling factor for sprites
_SHIFT = 4  # fixed-point bits for cv2 drawing on the supersampled canvas
_HORIZON = -0.35  # horizon row as a fraction of H (above the frame): sets the perspective
_SIZE = 0.153  # figure height in px per px below the horizon


def walkway_edges(x, height, width):
  """Top and bottom rows of the walkway at column(s) x; its edges slant a little."""
  x = np.asarray(x, np.float64) / width
  return height * (0.38 + 0.06 * x), height * (0.88 - 0.08 * x)


def foot_band(x, height, width, region):
  """Rows where feet may be at column x: 'walkway', its 'near_walkway' half, 'upper_lawn' or 'lower_lawn'."""
  top, bottom = walkway_edges(x, height, width)
  if region == "walkway":
    return top + 0.05 * height, bottom - 0.03 * height
  if region == "near_walkway":
    return 0.5 * (top + bottom), bottom - 0.03 * height
  if region == "upper_lawn":
    return 0.24 * height, top - 0.04 * height
  return bottom + 0.04 * height, 0.985 * height


def figure_height(y, height):
  """Height in px of an upright person whose feet are at row y (linear perspective)."""
  return _SIZE * (np.asarray(y, np.float64) - _HORIZON * height)


def _smooth_noise(rng, height, width, cells):
  """Sum of bicubic-upsampled white noise at the given cell sizes, unit-ish std."""
  out = np.zeros((height, width), np.float32)
  for i, cell in enumerate(cells):
    small = rng.standard_normal((height // cell + 2, width // cell + 2)).astype(np.float32)
    out += 0.7**i * cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
  return out / np.sqrt(sum(0.49**i for i in range(len(cells))))


def _pavement_joints(height, width):
  """Coverage in [0, 1] of slab joints: rows shrink with distance, columns converge."""
  canvas = np.zeros((height * _SS, width * _SS), np.uint8)
  horizon, scale = _HORIZON * height, 1 << _SHIFT

  def line(p0, p1):
    p0 = tuple(int(round(c * _SS * scale)) for c in p0)
    p1 = tuple(int(round(c * _SS * scale)) for c in p1)
    cv2.line(canvas, p0, p1, 255, _SS // 2, cv2.LINE_8, _SHIFT)

  y = float(height)
  while y > 0.3 * height:
    line((0, y), (width, y))
    y -= 0.55 * float(figure_height(y, height))
  spacing = 0.55 * float(figure_height(height, height))
  for k in range(-int(4 * width / spacing), int(4 * width / spacing) + 1):
    x_bottom = 0.5 * width + k * spacing
    x_top = 0.5 * width + k * spacing * (0.3 * height - horizon) / (height - horizon)
    line((x_top, 0.3 * height), (x_bottom, height))
  return canvas.reshape(height, _SS, width, _SS).mean((1, 3)) / 255.0


class Scene:
  """The static background (float32, grey levels) and the walkway mask of one camera."""

  def __init__(self, height, width, rng):
    self.height, self.width = height, width
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    top, bottom = walkway_edges(xx, height, width)
    self.walkway = (yy >= top) & (yy < bottom)
    edge_wobble = _smooth_noise(rng, 1, width, [max(width // 12, 1)])[0]
    building = yy < height * (0.12 + 0.01 * edge_wobble)
    hedge = ~building & (yy < height * (0.2 + 0.015 * _smooth_noise(rng, 1, width, [3])[0]))

    bg = 92 + 7 * _smooth_noise(rng, height, width, [16, 8, 4])
    bg += 5 * rng.standard_normal((height, width)).astype(np.float32)  # blades of grass
    hedge_tex = 55 + 10 * _smooth_noise(rng, height, width, [4, 2])
    bg = np.where(hedge, hedge_tex, bg)
    facade = 128 + 3 * _smooth_noise(rng, height, width, [8])
    panel = max(width // 7, 4)
    facade = np.where((xx.astype(int) % panel) < 1, facade - 25, facade)
    windows = (
      (yy > 0.025 * height) & (yy < 0.08 * height) & ((xx % panel) > 0.25 * panel) & ((xx % panel) < 0.8 * panel)
    )
    facade = np.where(windows, 85 + 0.3 * (facade - 128), facade)
    bg = np.where(building, facade, bg)
    paving = 165 + 5 * _smooth_noise(rng, height, width, [16, 4]) - 22 * _pavement_joints(height, width)
    # Blend by the fraction of each pixel the walkway covers: stair-stepped edges look fake.
    cover = np.clip(yy - top + 0.5, 0, 1) * np.clip(bottom - yy + 0.5, 0, 1)
    kerb = np.clip(1.2 - np.abs(yy - top - 0.7), 0, 1) + np.clip(1.2 - np.abs(bottom - yy - 0.7), 0, 1)
    bg = bg * (1 - cover) + (paving + 20 * kerb) * cover
    bg = bg.astype(np.float32)
    for x in (0.2 * width, 0.75 * width):  # lamp posts stand on the far lawn
      y = float(walkway_edges(x, height, width)[0]) - 0.02 * height
      composite(bg, rasterize(lamp_post(), x, y, float(figure_height(y, height)), 1), None)
    vignette = 1 - 0.2 * ((xx / width - 0.5) ** 2 + (yy / height - 0.5) ** 2)
    self.background = (bg * vignette).astype(np.float32)


# Sprites: lists of (shape, points, size, grey value); sizes in figure heights.


def lamp_post():
  return [("line", [(0, 0), (0, -2.3)], 0.06, 50), ("ellipse", [(0.06, -2.3)], (0.12, 0.05), 70)]


def person(phase, colors):
  """A walker seen side-on, facing +x; phase drives the leg and arm swing."""
  legs, shirt, head = colors
  swing = 0.45 * np.sin(phase)
  hip, shoulder = (0.0, -0.47), (0.0, -0.77)
  out = []
  for side, shade in ((1, 0.8), (-1, 1.0)):  # the far leg is drawn first and darker
    foot = (0.47 * np.sin(side * swing), 0.0)
    out.append(("line", [hip, foot], 0.09, legs * shade))
  arm = lambda s: (shoulder, (0.3 * np.sin(-s * 0.7 * swing), shoulder[1] + 0.3 * np.cos(swing)))
  out.append(("line", arm(1), 0.06, shirt * 0.8))
  out.append(("ellipse", [(0.0, -0.63)], (0.1, 0.18), shirt))
  out.append(("line", arm(-1), 0.06, shirt))
  out.append(("ellipse", [(0.01, -0.89)], (0.07, 0.085), head))
  return out


def skater(phase, colors):
  """A person gliding upright on a thin board: a walker's figure whose legs only push now and then."""
  return [("line", [(-0.28, -0.03), (0.28, -0.03)], 0.035, 45)] + person(phase, colors)


def cyclist(phase, colors):
  """A rider on a bicycle facing +x: wheels, frame, leaning torso, pedalling legs."""
  legs, shirt, head = colors
  rear, front, crank, seat, bar = (-0.33, -0.17), (0.33, -0.17), (0.0, -0.17), (-0.1, -0.47), (0.25, -0.5)
  out = [("ring", [rear], 0.17, 40), ("ring", [front], 0.17, 40)]
  out += [
    ("line", [rear, seat], 0.035, 70),
    ("line", [seat, crank], 0.035, 70),
    ("line", [crank, rear], 0.035, 70),
    ("line", [seat, bar], 0.035, 70),
    ("line", [bar, front], 0.035, 70),
  ]
  for side, shade in ((1, 0.8), (-1, 1.0)):
    pedal = (crank[0] + 0.1 * np.cos(phase + side * np.pi / 2), crank[1] + 0.1 * np.sin(phase + side * np.pi / 2))
    knee = (0.5 * (seat[0] + pedal[0]) + 0.12, 0.5 * (seat[1] + pedal[1]) - 0.05)
    out += [("line", [seat, knee], 0.09, legs * shade), ("line", [knee, pedal], 0.08, legs * shade)]
  shoulder = (0.1, -0.78)
  out.append(
    (
      "poly",
      [
        (seat[0] - 0.06, seat[1]),
        (seat[0] + 0.08, seat[1] + 0.02),
        (shoulder[0] + 0.07, shoulder[1]),
        (shoulder[0] - 0.06, shoulder[1] - 0.02),
      ],
      None,
      shirt,
    )
  )
  out.append(("line", [shoulder, bar], 0.06, shirt))
  out.append(("ellipse", [(shoulder[0] + 0.06, -0.88)], (0.07, 0.085), head))
  return out


def cart(colors):
  """A small boxy vehicle facing +x: body, darker window, wheels."""
  body, window, _ = colors
  return [
    ("poly", [(-0.75, -0.12), (0.75, -0.12), (0.75, -0.5), (0.35, -0.5), (0.25, -0.78), (-0.75, -0.78)], None, body),
    ("poly", [(-0.1, -0.52), (0.3, -0.52), (0.22, -0.73), (-0.1, -0.73)], None, window),
    ("ellipse", [(-0.48, -0.12)], (0.12, 0.12), 30),
    ("ellipse", [(0.48, -0.12)], (0.12, 0.12), 30),
  ]


def rasterize(sprite, x, y, size, direction):
  """Draws a sprite with feet at (x, y), height `size` px, mirrored if direction < 0.

  Returns (top, left, alpha, premultiplied value): float32 patches in frame pixels.
  """
  pts = [np.asarray(p, np.float64) * [direction * size, size] + [x, y] for _, p, _, _ in sprite]
  pad = 0.3 * size + 2
  lo = np.floor(np.min([p.min(0) for p in pts], 0) - pad).astype(int)
  hi = np.ceil(np.max([p.max(0) for p in pts], 0) + pad).astype(int)
  w, h = hi - lo
  alpha = np.zeros((h * _SS, w * _SS), np.uint8)
  value = np.zeros_like(alpha)
  fix = lambda p: np.round((p - lo) * _SS * (1 << _SHIFT)).astype(np.int32)
  for (shape, _, extent, grey), p in zip(sprite, pts):
    for canvas, colour in ((alpha, 255), (value, int(np.clip(grey, 0, 255)))):
      if shape == "line":
        thick = max(1, int(round(extent * size * _SS)))
        cv2.line(canvas, tuple(fix(p[0])), tuple(fix(p[1])), colour, thick, cv2.LINE_8, _SHIFT)
      elif shape == "ellipse":
        axes = tuple(int(a) for a in np.round(np.asarray(extent) * size * _SS * (1 << _SHIFT)))
        cv2.ellipse(canvas, tuple(fix(p[0])), axes, 0, 0, 360, colour, -1, cv2.LINE_8, _SHIFT)
      elif shape == "ring":
        thick = max(1, int(round(0.035 * size * _SS)))
        radius = int(round(extent * size * _SS * (1 << _SHIFT)))
        cv2.circle(canvas, tuple(fix(p[0])), radius, colour, thick, cv2.LINE_8, _SHIFT)
      else:
        cv2.fillPoly(canvas, [fix(p)], colour, cv2.LINE_8, _SHIFT)
  a = alpha.astype(np.float32) / 255.0
  premult = value.astype(np.float32) * a
  box = lambda img: cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)  # exact box mean at integer scale
  return int(lo[1]), int(lo[0]), box(a), box(premult)


def composite(frame, patch, opacity=1.0):
  """Alpha-blends a rasterized patch into `frame` in place; returns the frame-clipped alpha.

  With opacity None the patch is painted fully; a float < 1 only darkens (for shadows).
  Returns (rows slice, cols slice, alpha) of the visible part, or None if off-frame.
  """
  top, left, alpha, premult = patch
  height, width = frame.shape
  r0, c0 = max(top, 0), max(left, 0)
  r1, c1 = min(top + alpha.shape[0], height), min(left + alpha.shape[1], width)
  if r0 >= r1 or c0 >= c1:
    return None
  a = alpha[r0 - top : r1 - top, c0 - left : c1 - left]
  rows, cols = slice(r0, r1), slice(c0, c1)
  if opacity is None or opacity >= 1.0:
    frame[rows, cols] = frame[rows, cols] * (1 - a) + premult[r0 - top : r1 - top, c0 - left : c1 - left]
  else:
    frame[rows, cols] *= 1 - opacity * a
  return rows, cols, a
