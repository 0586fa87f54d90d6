"""Outputs that appear whole or not at all: files and folders are written under a temporary name beside their
destination and renamed into place only when complete, so a crash, a kill or a full disk never leaves half a
report, bundle or table where a finished one is expected."""

from collections.abc import Iterator
import contextlib
import json
import os
import shutil
import tempfile
from typing import Any


def _temp_name(path: str, suffix: str) -> str:
  folder, name = os.path.split(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=suffix, dir=folder)
  os.close(fd)
  return tmp


@contextlib.contextmanager
def path(destination: str) -> Iterator[str]:
  """A temporary path beside `destination` to write to; renamed to `destination` when the block succeeds."""
  tmp = _temp_name(destination, ".tmp")
  try:
    yield tmp
    os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; outputs are meant to be shared
    os.replace(tmp, destination)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


@contextlib.contextmanager
def open_file(destination: str, mode: str = "w", **kwargs) -> Iterator[Any]:
  """`open(destination, mode)` that lands only when the block succeeds, flushed to disk first."""
  with path(destination) as tmp:
    with open(tmp, mode, **kwargs) as f:
      yield f
      f.flush()
      os.fsync(f.fileno())


def write_text(destination: str, text: str) -> None:
  with open_file(destination) as f:
    f.write(text)


def write_json(destination: str, doc: Any, **kwargs) -> None:
  """`doc` as indented JSON with a final newline."""
  write_text(destination, json.dumps(doc, indent=2, **kwargs) + "\n")


@contextlib.contextmanager
def directory(destination: str) -> Iterator[str]:
  """A private temporary folder beside `destination` to fill; it replaces `destination` when the block succeeds.

  An earlier folder at `destination` is moved aside first and deleted only after the new one is in place, so
  `destination` holds a complete result except for the instant between two renames.
  """
  destination = os.path.abspath(destination)
  parent, name = os.path.split(destination)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=parent)
  try:
    yield tmp
    os.chmod(tmp, 0o755)  # mkdtemp makes it private
    if not os.path.exists(destination):
      os.replace(tmp, destination)
      return
    old = tempfile.mkdtemp(prefix=f".{name}.old-", dir=parent)
    os.replace(destination, os.path.join(old, name))
    try:
      os.replace(tmp, destination)
    except OSError:
      os.replace(os.path.join(old, name), destination)
      raise
    finally:
      shutil.rmtree(old, ignore_errors=True)
  finally:
    if os.path.exists(tmp):
      shutil.rmtree(tmp, ignore_errors=True)
