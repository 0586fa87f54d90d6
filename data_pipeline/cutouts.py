"""A user's own anomaly cut-outs (e.g. UBnormal's), to paste into training clips instead of the built-in sources.

AED-MAE (Ristea et al., CVPR 2024) crops abnormal actions out of UBnormal with its pixel masks and blends them
into normal training videos. UBnormal is not shipped here; a user who has it (or any objects with masks) gives a
folder of object clips, one sub-folder per clip:

  <dir>/<clip>/<frame>.png ...            the object's frames, in natural order (any image format)
  <dir>/<clip>/masks/<frame>.png ...      one mask per frame, same names; non-zero = object

Each clip is cropped to the box that holds its object in every frame (so it keeps its own motion inside that box)
and converted to the training channels. `anomaly_paste` pastes T consecutive frames of a random clip, scaled to the
drawn object size, along its straight path.
"""

import dataclasses
import os

import numpy as np

from data_pipeline import frame_io
from data_pipeline import framestore
from data_pipeline.errors import UserError
from data_pipeline.sources import folders

MASKS = "masks"


@dataclasses.dataclass(frozen=True)
class Cutout:
  """One object clip: frames (n, h, w, C) float32 in [0, 1] and masks (n, h, w) bool, cropped to the object."""

  name: str
  frames: np.ndarray
  masks: np.ndarray


def _clip(folder: str, channels: int) -> Cutout:
  frames = folders.frame_files(folder)
  mask_dir = os.path.join(folder, MASKS)
  if not frames:
    raise UserError(f"{folder}: no frames (expected image files and a {MASKS}/ folder of masks with the same names)")
  if not os.path.isdir(mask_dir):
    raise UserError(f"{folder}: no {MASKS}/ folder (one mask image per frame, same names, non-zero = object)")
  images, masks = [], []
  for path in frames:
    mask_path = os.path.join(mask_dir, os.path.basename(path))
    if not os.path.isfile(mask_path):
      raise UserError(f"{mask_path}: missing (every frame of a cut-out clip needs its mask)")
    image, mask = frame_io.read_frame(path), frame_io.read_frame(mask_path)
    if mask.shape[:2] != image.shape[:2]:
      raise UserError(f"{mask_path}: {mask.shape[1]}x{mask.shape[0]}, its frame is {image.shape[1]}x{image.shape[0]}")
    images.append(framestore.convert(image, image.shape[:2], channels))
    masks.append((mask if mask.ndim == 2 else mask.max(axis=-1)) > 0)
  masks = np.stack(masks)
  if not masks.any():
    raise UserError(f"{mask_dir}: every mask is empty")
  rows, cols = np.flatnonzero(masks.any(axis=(0, 2))), np.flatnonzero(masks.any(axis=(0, 1)))
  box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
  crop = np.stack(images)[:, box[0], box[1]].astype(np.float32) / 255.0
  return Cutout(os.path.basename(folder), crop, masks[:, box[0], box[1]])


def load(directory: str, channels: int) -> tuple[Cutout, ...]:
  """Every object clip under `directory` (train.paste_dir), converted to `channels`."""
  directory = os.path.expanduser(directory)
  if not os.path.isdir(directory):
    raise UserError(f"train.paste_dir: {directory} is not a folder of cut-out clips")
  names = sorted(
    (n for n in os.listdir(directory) if os.path.isdir(os.path.join(directory, n))), key=folders.natural_key
  )
  if not names:
    raise UserError(f"train.paste_dir: {directory} holds no clip folders (<clip>/<frames> with <clip>/{MASKS}/)")
  return tuple(_clip(os.path.join(directory, n), channels) for n in names)
