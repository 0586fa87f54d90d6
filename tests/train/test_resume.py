"""Pre-emption and crashes: SIGTERM saves and stops, SIGKILL loses at most one interval,
and the resumed run ends bit-identical to an uninterrupted one (CPU, float32): the session's shared run of
tests/fault/tiny_training.py's config (tests/conftest.py's tiny_training_run)."""

import os
import signal
import time

from fault import tiny_training
import jax
import numpy as np
import pytest
import tiny_run

from maskedskip_jax.train import checkpointing
from maskedskip_jax.train import metrics_log
from maskedskip_jax.train import state as train_state

STEPS, EVERY = tiny_training.STEPS, tiny_training.EVERY  # 18 steps, a checkpoint every 3, the newest 2 kept


def _finished_steps(workdir):
  folder = checkpointing.checkpoint_dir(workdir)
  names = os.listdir(folder) if os.path.isdir(folder) else []
  return sorted(int(n) for n in names if n.isdigit())


def _wait_for_checkpoint_after(proc, workdir, step, timeout=240):
  deadline = time.time() + timeout
  while time.time() < deadline:
    if any(s > step for s in _finished_steps(workdir)):
      return
    if proc.poll() is not None:
      out, err = proc.communicate()
      pytest.fail(f"run ended (rc {proc.returncode}) before a checkpoint after step {step}:\n{err[-3000:]}")
    time.sleep(0.02)
  proc.kill()
  pytest.fail(f"no checkpoint after step {step} within {timeout} s")


def _losses(workdir):
  return [(r["step"], r["loss"]) for r in metrics_log.read(os.path.join(workdir, "metrics.jsonl"))]


def test_sigterm_then_sigkill_then_resume_is_bit_identical(tiny_training_run, tmp_path):
  dataset = tiny_training_run["dataset"]
  flags = tiny_training.flags(dataset)
  config = tiny_training.config(dataset)
  reference = tiny_training_run["workdir"]  # uninterrupted, through the same command line; read-only

  workdir = str(tmp_path / "interrupted")
  # 1. SIGTERM after the first checkpoint: a final checkpoint, then exit code 143.
  proc = tiny_run.popen_main(workdir, flags)
  _wait_for_checkpoint_after(proc, workdir, 0)
  proc.send_signal(signal.SIGTERM)
  out, err = proc.communicate(timeout=120)
  assert proc.returncode == 143, err[-3000:]
  stopped = _finished_steps(workdir)[-1]
  assert f"SIGTERM: saved step {stopped};" in err + out
  assert EVERY <= stopped < STEPS

  # 2. Resume, then SIGKILL once it has checkpointed again.
  proc = tiny_run.popen_main(workdir, flags)
  _wait_for_checkpoint_after(proc, workdir, stopped)
  proc.kill()
  proc.communicate(timeout=60)
  assert proc.returncode == -signal.SIGKILL
  killed_at = _finished_steps(workdir)[-1]
  assert stopped < killed_at < STEPS

  # A checkpoint that was being written when the process died must never load.
  half = os.path.join(checkpointing.checkpoint_dir(workdir), f"{STEPS + 5}.orbax-checkpoint-tmp-1234")
  os.makedirs(os.path.join(half, "state"))
  with open(os.path.join(half, "state", "garbage"), "w") as f:
    f.write("half a checkpoint")

  # 3. Resume to the end.
  last = tiny_run.run_main(workdir, flags)
  assert last.returncode == 0, last.stderr[-3000:]
  assert f"resumed from {checkpointing.checkpoint_dir(workdir)}/{killed_at}" in last.stderr + last.stdout
  assert _finished_steps(workdir)[-1] == STEPS and not os.path.exists(half)

  _, want, step_a = train_state.restore_variables(config, reference)
  _, got, step_b = train_state.restore_variables(config, workdir)
  assert step_a == step_b == STEPS
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(want), jax.tree.leaves(got)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=jax.tree_util.keystr(path))
  # The metrics read as one run: every step once, the same losses.
  assert _losses(workdir) == _losses(reference)
  assert [s for s, _ in _losses(reference)] == list(range(1, STEPS + 1))
