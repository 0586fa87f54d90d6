"""The live reading thread's reconnection rules on a fake source, and which sources count as live."""

import time

import numpy as np
import pytest

from maskedskip_jax.deploy import sources
from maskedskip_jax.errors import UserError

FPS = 20


class FakeConnection:
  def __init__(self, count, stall_s=0.0, fps=FPS):
    self.left, self.stall_s, self.fps = count, stall_s, fps

  def read(self):
    if self.left == 0:
      time.sleep(self.stall_s)
      return None
    self.left -= 1
    return np.zeros((4, 4), np.uint8)

  def close(self):
    pass


def test_feed_reconnects_resets_its_count_and_gives_up():
  plan = [FakeConnection(3), None, FakeConnection(2, stall_s=0.3), None, None]
  lines = []
  feed = sources.Feed(
    "rtsp://user:secret@cam/x", read_timeout=0.3, retries=2, retry_wait=0.01, log=lines.append,
    opener=lambda spec, timeout: plan.pop(0) if plan else None,
  )  # fmt: skip
  assert feed.open() == FPS
  got = [len(list(frames)) for frames in feed.connections()]
  assert got[:2] == [3, 2] and sum(got) == 5  # each connection its own run of frames
  assert feed.reconnects == 1 and feed.error.startswith("rtsp://user:***@cam/x: cannot reopen it (gave up after 2")
  assert "secret" not in "\n".join(lines) + feed.error
  assert [line.split(": ", 2)[-1].split(" after")[0].split(";")[0] for line in lines] == [
    "stream dropped",
    "cannot reopen it",
    "reconnected",
    "stream stalled (no frame for 0.3 s)",
    "cannot reopen it",
    "cannot reopen it",
  ]


def test_feed_that_opens_but_sends_nothing_runs_out_of_retries():
  opened, lines = [], []

  def opener(spec, timeout):  # one good connection, then every one accepted and closed at once
    opened.append(spec)
    return None if len(opened) > 50 else FakeConnection(3 if len(opened) == 1 else 0)

  feed = sources.Feed("rtsp://cam/x", retries=2, retry_wait=0.01, log=lines.append, opener=opener)
  feed.open()
  got = [len(list(frames)) for frames in feed.connections()]
  assert got[0] == 3 and sum(got) == 3
  assert len(opened) == 4  # the first, then one at once and one per retry: each empty connection is a failure
  assert feed.error == "rtsp://cam/x: cannot reopen it (gave up after 2 retries after 3 frame(s))"
  assert sum("retrying in" in line for line in lines) == 2 and "reconnected" in lines[1]


def test_feed_that_never_opens_is_one_error_and_stop_ends_it():
  feed = sources.Feed("rtsp://cam/x", retries=1, retry_wait=0.01, log=lambda line: None, opener=lambda s, t: None)
  with pytest.raises(UserError, match=r"rtsp://cam/x: cannot open it \(gave up after 1 retries\)"):
    feed.open()
  feed = sources.Feed("0", log=lambda line: None, opener=lambda s, t: FakeConnection(10**9))
  feed.open()
  frames = next(feed.connections())
  assert next(frames) is not None
  feed.stop.set()
  assert len(list(frames)) < 10**3 and not list(feed.connections())
  feed.close()


def test_source_kinds(tmp_path, monkeypatch):
  assert sources.is_live("rtsp://cam/1") and sources.is_live("HTTPS://cam/1.mjpg") and sources.is_live("0")
  assert not sources.is_live("clip.mp4") and sources.is_live("clip.mp4", realtime=True)
  (tmp_path / "7").mkdir()
  monkeypatch.chdir(tmp_path)  # an existing path named like a camera index is that path
  assert not sources.is_live("7") and sources.display_name("3") == "camera 3"
