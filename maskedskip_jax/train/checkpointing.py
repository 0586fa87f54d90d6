"""Orbax checkpoints of the train state, and the SIGTERM (pre-emption) watch.

Each checkpoint holds two items: 'state' (the whole train-state pytree: params,
batch stats, optimiser state, step, rng) and 'meta' (JSON: the step and the
config the run was started with). Orbax writes each one into a temporary folder
and renames it when complete, so a process killed mid-write leaves nothing a
restart would load.
"""

import contextlib
import errno
import os
import re
import signal
import sys
import threading
from typing import Any

from absl import logging
import jax
import orbax.checkpoint as ocp

from maskedskip_jax.errors import UserError


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), "checkpoints")


def manager(workdir: str, *, keep: int = 3, async_save: bool = True, read_only: bool = False) -> ocp.CheckpointManager:
  """The workdir's checkpoint manager: keeps the newest `keep`, saves when told."""
  directory = checkpoint_dir(workdir)
  if read_only and not os.path.isdir(directory):
    raise UserError(f"{directory}: no checkpoints here; train first (--mode=train) or pass the run's --workdir")
  options = ocp.CheckpointManagerOptions(
    max_to_keep=None if read_only else keep,
    save_interval_steps=0 if read_only else 1,
    create=not read_only,
    read_only=read_only,
    enable_async_checkpointing=async_save,
    cleanup_tmp_directories=not read_only,
  )  # a kill mid-write leaves a tmp folder: removed on restart
  try:
    return ocp.CheckpointManager(directory, item_names=("state", "meta"), options=options)
  except PermissionError as e:
    raise UserError(
      f"{directory}: cannot create the checkpoint folder ({e.strerror}); pick a writable --workdir"
    ) from None


def save(mngr: ocp.CheckpointManager, step: int, state: Any, meta: dict[str, Any]) -> bool:
  """Start writing `state` as checkpoint `step` (asynchronously); False if it exists."""
  if mngr.latest_step() == step:
    return False
  args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(dict(meta, step=step)))
  return mngr.save(step, args=args, force=True)


def _existing_step(mngr: ocp.CheckpointManager, step: int | None) -> int:
  steps = mngr.all_steps()
  if not steps:
    raise UserError(f"{mngr.directory}: no finished checkpoint to restore")
  if step is None:
    return max(steps)
  if step not in steps:
    raise UserError(f"{mngr.directory}: no checkpoint for step {step}; have {sorted(steps)}")
  return step


def read_meta(mngr: ocp.CheckpointManager, step: int | None = None) -> dict[str, Any]:
  """The 'meta' item of checkpoint `step` (default: newest): {'step', 'config'}."""
  step = _existing_step(mngr, step)
  return dict(mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"])


def restore(mngr: ocp.CheckpointManager, abstract_state: Any, step: int | None = None) -> tuple[Any, dict[str, Any]]:
  """(state, meta) of checkpoint `step` (default: the newest), laid out like `abstract_state`.

  `abstract_state` is a pytree of jax.ShapeDtypeStruct carrying the target
  shardings, so every process gets its arrays directly where they belong.
  """
  step = _existing_step(mngr, step)
  args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore())
  try:
    restored = mngr.restore(step, args=args)
  except (ValueError, KeyError) as e:
    # A tree that does not match means another model config wrote this workdir.
    raise UserError(
      f"{mngr.directory}/{step}: checkpoint does not fit this config's model "
      f"({str(e).splitlines()[0][:200]}); use a new --workdir or the config it was trained "
      "with"
    ) from None
  return restored["state"], dict(restored["meta"])


_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM)
# TensorStore (Orbax's writer) raises ValueError("... [os_error_code='28']") with no OSError behind it.
_TENSORSTORE_ERRNO = re.compile(r"os_error_code='(\d+)'")


def _disk_error(e: BaseException) -> int | None:
  """The errno (disk full, file too large, read-only, no permission) behind `e`, if any."""
  seen = set()
  while e is not None and id(e) not in seen:
    seen.add(id(e))
    if isinstance(e, OSError) and e.errno in _DISK_ERRNOS:
      return e.errno
    code = _TENSORSTORE_ERRNO.search(str(e))
    if code and int(code[1]) in _DISK_ERRNOS:
      return int(code[1])
    e = e.__cause__ or e.__context__
  return None


def ignore_closed_loop_reports() -> None:
  """After a failed write, TensorStore's other pending writes report into Orbax's closed event loop.

  TensorStore hands those errors to sys.unraisablehook; they say nothing the
  checkpoint error does not, and would bury it under hundreds of tracebacks.
  """
  previous = sys.unraisablehook

  def hook(unraisable):
    if not (isinstance(unraisable.exc_value, RuntimeError) and str(unraisable.exc_value) == "Event loop is closed"):
      previous(unraisable)

  sys.unraisablehook = hook


@contextlib.contextmanager
def disk_errors_as_user_errors(directory: str):
  """A checkpoint write that fails for lack of space or permission is the user's to fix."""
  try:
    yield
  except Exception as e:  # pylint: disable=broad-except
    cause = _disk_error(e)
    if cause is None:
      raise
    raise UserError(
      f"{directory}: could not write a checkpoint ({os.strerror(cause)}); free some space "
      "or pick another --workdir, then rerun to resume from the last finished checkpoint"
    ) from None


class PreemptionWatch:
  """Tells the loop when to write a last checkpoint and stop.

  A single process catches SIGTERM itself. In a multi-process run JAX's
  pre-emption service already listens for it and agrees with the other processes
  on one step at which all of them save (a collective), so it is asked instead.
  """

  def __init__(self):
    self._flag = threading.Event()
    self._previous = None
    self._multiprocess = jax.process_count() > 1
    if not self._multiprocess and threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._on_signal)

  def _on_signal(self, signum, frame):
    del signum, frame
    logging.warning("SIGTERM: writing a final checkpoint, then stopping")
    self._flag.set()

  def reached(self, step: int) -> bool:
    if self._multiprocess:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

      try:
        return multihost_utils.reached_preemption_sync_point(step)
      except RuntimeError:  # the pre-emption service is switched off
        return False
    return self._flag.is_set()

  def close(self):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      self._previous = None
