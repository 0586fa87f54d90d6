"""Progress for whoever reads it: a redrawn bar on a terminal, a plain line now and then in a log file.

A tqdm bar redraws itself with carriage returns about ten times a second; sent to a file (a batch job's log, CI)
that is tens of kilobytes of one line overwritten. So when the stream is not a terminal, `Progress` prints a
whole line instead, at most one every `interval_s` plus the first and the last: position, the caller's fields
(loss, clips/s), the rate and the time left. `write` prints a message clear of a bar in either case.
"""

from collections.abc import Callable
import sys
import time
from typing import Any

INTERVAL_S = 30.0


def is_interactive(stream) -> bool:
  """Whether a person is watching `stream` live (a terminal), so a redrawn bar is worth its noise."""
  try:
    return bool(stream.isatty())
  except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
    return False


def write(message: str, stream=None) -> None:
  """`message` on its own line of `stream` (default stderr), clear of any bar drawn there."""
  stream = stream or sys.stderr
  if is_interactive(stream):
    import tqdm  # pylint: disable=g-import-not-at-top  (terminals only: the onnxruntime path needs no tqdm)

    tqdm.tqdm.write(message, file=stream)
  else:
    stream.write(message + "\n")
    stream.flush()


def _duration(seconds: float) -> str:
  seconds = int(round(seconds))
  h, rest = divmod(seconds, 3600)
  m, s = divmod(rest, 60)
  return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class Progress:
  """A tqdm bar on a terminal, else plain lines; used like a tqdm bar (`update`, `n`, `close`, a context manager).

  total: the count at the end, or None when unknown; initial: the count it starts from (a resumed run).
  set_fields: name -> text shown with the position (the bar's postfix, or part of the plain line).
  interactive: None decides by `stream`. clock: seconds, monotonic (tests pass a fake one).
  """

  def __init__(
    self,
    total: int | None,
    *,
    initial: int = 0,
    unit: str = "step",
    desc: str = "",
    stream=None,
    disable: bool = False,
    interval_s: float = INTERVAL_S,
    interactive: bool | None = None,
    clock: Callable[[], float] = time.monotonic,
  ):
    self.stream = stream or sys.stderr
    self.total, self.n, self.unit, self.desc = total or None, initial, unit, desc
    self.interval_s, self.clock, self.disable = interval_s, clock, disable
    self.fields: dict[str, Any] = {}
    interactive = is_interactive(self.stream) if interactive is None else interactive
    if interactive:
      import tqdm  # pylint: disable=g-import-not-at-top  (terminals only)
    self.bar = (
      tqdm.tqdm(
        total=self.total,
        initial=initial,
        unit=unit,
        desc=desc or None,
        file=self.stream,
        dynamic_ncols=True,
        disable=disable,
      )
      if interactive
      else None
    )
    self._start = None  # (count, time) at the first update: the rate leaves out start-up and compile time
    self._printed = None  # (count, time) of the last plain line

  def set_fields(self, fields: dict[str, Any]) -> None:
    self.fields = dict(fields)
    if self.bar is not None:
      self.bar.set_postfix(self.fields, refresh=False)

  def update(self, k: int = 1) -> None:
    self.n += k
    if self.bar is not None:
      self.bar.update(k)
      return
    if self.disable:
      return
    now = self.clock()
    if self._start is None:
      self._start = (self.n, now)
    last = self.n == self.total and (self._printed is None or self._printed[0] != self.n)
    if last or self._printed is None or now - self._printed[1] >= self.interval_s:
      self._line(now)

  def _line(self, now: float) -> None:
    position = f"{self.unit} {self.n}/{self.total}" if self.total else f"{self.unit} {self.n}"
    if self.total:
      position += f" ({100 * self.n / self.total:.0f}%)"
    parts = [f"{self.desc}: {position}" if self.desc else position]
    parts += [f"{k} {v}" for k, v in self.fields.items()]
    first, since = self._start
    elapsed = now - since
    if elapsed > 0 and self.n > first:
      rate = (self.n - first) / elapsed
      parts.append(f"{rate:.3g} {self.unit}/s")
      if self.total and self.n < self.total:
        parts.append(f"{_duration((self.total - self.n) / rate)} left")
    parts.append(f"{_duration(elapsed)} elapsed")
    write(", ".join(parts), self.stream)
    self._printed = (self.n, now)

  def close(self) -> None:
    if self.bar is not None:
      self.bar.close()
    elif not self.disable and self._start is not None and self._printed[0] != self.n:
      self._line(self.clock())  # the last position, when no line showed it (stopped early, or no total)

  def __enter__(self) -> "Progress":
    return self

  def __exit__(self, *exc) -> None:
    self.close()
