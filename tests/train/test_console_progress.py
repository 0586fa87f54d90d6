"""Progress output: a bar on a terminal, a few plain lines (no carriage returns) in a log file."""

import io
import os

import tiny_run

from maskedskip_jax.train import console


class Clock:
  def __init__(self):
    self.now = 100.0

  def __call__(self):
    return self.now


class Terminal(io.StringIO):
  def isatty(self):
    return True


def test_is_interactive():
  assert console.is_interactive(Terminal()) and not console.is_interactive(io.StringIO())
  closed = io.StringIO()
  closed.close()
  assert not console.is_interactive(closed) and not console.is_interactive(object())


def test_a_log_file_gets_the_first_line_one_per_interval_and_the_last():
  stream, clock = io.StringIO(), Clock()
  with console.Progress(800, unit="step", desc="train", stream=stream, clock=clock) as progress:
    assert progress.bar is None
    for step in range(1, 801):
      clock.now += 0.5  # 400 s in all: the first line, one every 30 s, the last
      progress.set_fields({"loss": f"{1 / step:.4f}", "clips/s": "64.0"})
      progress.update(1)
  text = stream.getvalue()
  lines = text.splitlines()
  assert "\r" not in text and len(lines) == 1 + 400 // 30 + 1, text
  assert lines[0].startswith("train: step 1/800 (0%), loss 1.0000, clips/s 64.0")
  # A minute after the first update, two steps a second: 679 steps, 340 s to go.
  assert lines[2] == "train: step 121/800 (15%), loss 0.0083, clips/s 64.0, 2 step/s, 5m40s left, 1m00s elapsed"
  assert lines[-1].startswith("train: step 800/800 (100%), loss 0.0013") and "left" not in lines[-1]
  assert lines[-1].endswith(", 2 step/s, 6m40s elapsed")


def test_resumed_unknown_total_and_stopped_early():
  stream, clock = io.StringIO(), Clock()
  progress = console.Progress(None, initial=50, unit="frame", stream=stream, clock=clock, interval_s=10)
  for _ in range(25):
    clock.now += 1
    progress.update(2)
  progress.close()  # the last count is shown once even though no total was reached
  lines = stream.getvalue().splitlines()
  assert lines[0] == "frame 52, 0s elapsed" and lines[1] == "frame 72, 2 frame/s, 10s elapsed"
  assert lines[-1] == "frame 100, 2 frame/s, 24s elapsed" and len(lines) == 4
  progress.close()
  assert len(stream.getvalue().splitlines()) == 4


def test_disabled_prints_nothing():
  stream = io.StringIO()
  with console.Progress(10, stream=stream, disable=True) as progress:
    progress.update(10)
  assert stream.getvalue() == "" and progress.n == 10


def test_a_terminal_gets_the_bar():
  stream = Terminal()
  with console.Progress(5, unit="step", stream=stream) as progress:
    assert progress.bar is not None
    for _ in range(5):
      progress.set_fields({"loss": "0.5"})
      progress.update(1)
      console.write("a message", stream)
  assert "\r" in stream.getvalue() and "5/5" in stream.getvalue() and "a message\n" in stream.getvalue()


def test_write_is_a_plain_line_in_a_log():
  stream = io.StringIO()
  console.write("resumed from here", stream)
  assert stream.getvalue() == "resumed from here\n"


def test_training_into_a_pipe_has_no_bar_redraws(tmp_path):
  root = tiny_run.make_dataset(str(tmp_path / "data"), num_train=1, num_test=1, frames=9)
  proc = tiny_run.run_main(str(tmp_path / "work"), tiny_run.overrides(root, **{"train.num_steps": 3}))
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "\r" not in proc.stderr, proc.stderr[-2000:]
  lines = [line for line in proc.stderr.splitlines() if line.startswith("train: step ")]
  assert lines and lines[-1].startswith("train: step 3/3 (100%), loss "), proc.stderr[-2000:]
  assert os.path.isdir(tmp_path / "work" / "checkpoints")
