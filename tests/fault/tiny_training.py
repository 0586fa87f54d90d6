"""The tiny training run the fault tests interrupt, break and repeat, and what it leaves in its workdir.

A latent-8 MaskedSkipUNet on tests/tiny_run.py's 32x32 grey videos: STEPS steps,
a checkpoint every EVERY. `reference_run` trains it once, uninterrupted, through
the real command line; the helpers read a workdir the way a person would: which
checkpoints are finished or still being written, which steps metrics.jsonl logged.
"""

import dataclasses
import os
import re
import signal
import subprocess
import time

import numpy as np
import tiny_run

STEPS, EVERY = 18, 3
TINY = dict(model__latent_dim=8, train__num_steps=STEPS, train__checkpoint_every_steps=EVERY, train__keep_checkpoints=2)
_WRITING = re.compile(r"(\d+)\.orbax-checkpoint-tmp")


def flags(dataset: str, **kw) -> list[str]:
  return tiny_run.overrides(dataset, **{**TINY, **kw})


def config(dataset: str, **kw):
  return tiny_run.config(dataset, **{**TINY, **kw})


def checkpoint_steps(workdir: str) -> tuple[list[int], list[int]]:
  """(finished steps, steps whose write is in progress) in the workdir's checkpoint folder."""
  try:
    names = os.listdir(os.path.join(workdir, "checkpoints"))
  except FileNotFoundError:
    return [], []
  writing = [int(m[1]) for m in map(_WRITING.fullmatch, names) if m]
  return sorted(int(n) for n in names if n.isdigit()), sorted(writing)


def losses(workdir: str) -> list[tuple[int, float]]:
  """(step, loss) of metrics.jsonl; a line cut short by a kill is skipped."""
  import json  # pylint: disable=g-import-not-at-top

  out = []
  try:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      for line in f:
        try:
          record = json.loads(line)
        except ValueError:
          continue
        out.append((record["step"], record["loss"]))
  except FileNotFoundError:
    pass
  return out


def last_logged(workdir: str) -> int:
  return max((s for s, _ in losses(workdir)), default=0)


def launch(workdir: str, run_flags: list[str], log_path: str) -> subprocess.Popen:
  with open(log_path, "w") as log:
    # Its own session, so a kill reaches every process it started.
    return subprocess.Popen(
      tiny_run.main_command(workdir, run_flags),
      cwd=tiny_run.REPO,
      env=tiny_run.env(),
      stdout=log,
      stderr=subprocess.STDOUT,
      start_new_session=True,
    )


def kill(proc: subprocess.Popen) -> None:
  try:
    os.killpg(proc.pid, signal.SIGKILL)
  except ProcessLookupError:
    pass
  proc.wait()


def read_log(path: str) -> str:
  with open(path, errors="replace") as f:
    return f.read()


def variables(dataset: str, workdir: str):
  """The workdir's newest checkpoint as ({'params', 'batch_stats'} numpy tree, step)."""
  import jax  # pylint: disable=g-import-not-at-top

  from maskedskip_jax.train import state as train_state  # pylint: disable=g-import-not-at-top

  _, tree, step = train_state.restore_variables(config(dataset), workdir)
  return jax.tree.map(np.asarray, tree), step


def differences(want, got) -> list[str]:
  """Leaf paths whose bytes differ (NaN-safe, exact)."""
  import jax  # pylint: disable=g-import-not-at-top

  want_leaves = dict(jax.tree_util.tree_flatten_with_path(want)[0])
  got_leaves = dict(jax.tree_util.tree_flatten_with_path(got)[0])
  if want_leaves.keys() != got_leaves.keys():
    return ["the trees have different leaves"]
  return [
    jax.tree_util.keystr(k)
    for k, a in want_leaves.items()
    if a.dtype != got_leaves[k].dtype or a.tobytes() != got_leaves[k].tobytes()
  ]


@dataclasses.dataclass
class Reference:
  workdir: str
  losses: list
  variables: dict
  startup_s: float  # launch to the first logged step
  seconds: float


def reference_run(dataset: str, workdir: str) -> Reference:
  """The uninterrupted run every trial is compared with."""
  begin = time.perf_counter()
  proc = launch(workdir, flags(dataset), workdir + ".log")
  first = None
  while proc.poll() is None:
    if first is None and last_logged(workdir) > 0:
      first = time.perf_counter() - begin
    time.sleep(0.01)
  if proc.returncode != 0:
    raise RuntimeError(f"reference run failed (rc {proc.returncode}):\n{read_log(workdir + '.log')[-3000:]}")
  tree, step = variables(dataset, workdir)
  assert step == STEPS, step
  return Reference(workdir, losses(workdir), tree, first or 1.0, time.perf_counter() - begin)
