"""A small synthetic camera scene for the live-source tests: frames, an MP4 of them, and CSV rows read back."""

import csv

import cv2
import numpy as np

SIZE = (40, 56)
FPS = 20


def scene(k: int) -> np.ndarray:
  img = np.zeros((*SIZE, 3), np.uint8)
  img[..., 0] = np.linspace(30, 200, SIZE[1], dtype=np.uint8)[None, :]
  img[10:22, k % 44 : k % 44 + 12] = (250, 250, 40)
  return img


def write_mp4(path, count):
  writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE[::-1])
  for k in range(count):
    writer.write(cv2.cvtColor(scene(k), cv2.COLOR_RGB2BGR))
  writer.release()
  return str(path)


def rows(path):
  with open(path) as f:
    return list(csv.DictReader(f))
