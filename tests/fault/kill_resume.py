r"""SIGKILL a training run at random moments, restart it, and check that nothing was lost.

  python3 tests/fault/kill_resume.py --trials 10          # ~20 s per trial on 2 CPU cores
  python3 tests/fault/kill_resume.py --trials 3 --seed 7 --keep /tmp/kills

One uninterrupted run of a tiny config is the reference. Each trial trains the
same config in a fresh workdir and stops it 1 to 3 times (seeded) at one of
these moments:
  startup     SIGKILL at a random time before training logs a step (imports, data, compile)
  step        SIGKILL just after a random step
  checkpoint  SIGKILL while Orbax writes a checkpoint (<step>.orbax-checkpoint-tmp exists)
  sigterm     SIGTERM (pre-emption) just after a random step: the run must save that
              step and exit with code 143
After each stop the same command runs again in the same workdir, until a run
ends. A trial passes when
  * the final params and batch statistics are bit-identical to the reference's
    and metrics.jsonl holds the reference's losses for every step;
  * every restart resumed from the newest complete checkpoint left by the kill,
    never from the one being written, and no temporary checkpoint folder remains;
  * a kill cost at most one checkpoint interval of logged steps. With asynchronous
    saves (the default) add the steps that ran while the newest checkpoint was still
    being written; `--sync-checkpoints` (train.async_checkpoints=False) checks the
    strict bound (see docs/reliability.md).
"""

import argparse
import dataclasses
import os
import random
import re
import signal
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if __package__ in (None, ""):  # run as a script: the repo and tests/ are not on the path
  sys.path[:0] = [REPO, os.path.join(REPO, "tests")]

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import tiny_run  # pylint: disable=g-import-not-at-top,wrong-import-position

from fault import tiny_training as tt  # pylint: disable=g-import-not-at-top,wrong-import-position

MOMENTS = ("startup", "step", "checkpoint", "sigterm")
EXIT_PREEMPTED = 143
_RESUMED = re.compile(r"resumed from \S*/checkpoints/(\d+)")
_POLL_S = 0.002


@dataclasses.dataclass
class Kill:
  moment: str
  logged: int = 0  # newest step in metrics.jsonl when the process died
  finished: int = 0  # newest complete checkpoint then
  writing: int | None = None  # checkpoint being written then
  rc: int | None = None  # the process's exit status
  resumed: int | None = None  # step the next run resumed from

  def describe(self) -> str:
    during = f", writing {self.writing}" if self.writing is not None else ""
    after = "restart died first" if self.resumed is None else f"resumed {self.resumed}, redone {self.redone}"
    return f"{self.moment} at step {self.logged} (checkpoint {self.finished}{during}; {after})"

  @property
  def redone(self) -> int | None:
    """Logged steps the restart computes again."""
    return None if self.resumed is None else self.logged - self.resumed


@dataclasses.dataclass
class Trial:
  seed: int
  kills: list
  missed: list  # moments that never came: the run ended first
  starts: int
  seconds: float
  problems: list

  def describe(self) -> str:
    verdict = "ok" if not self.problems else "FAILED: " + "; ".join(self.problems)
    missed = f", missed {self.missed}" if self.missed else ""
    return (
      f"trial seed {self.seed}: {len(self.kills)} kill(s) [{'; '.join(k.describe() for k in self.kills)}]"
      f"{missed}, {self.starts} starts, {self.seconds:.0f} s: {verdict}"
    )


def draw_plan(rng: random.Random, max_kills: int = 3) -> list[str]:
  """1..max_kills moments, at least one of them during a checkpoint write."""
  plan = [rng.choice(MOMENTS) for _ in range(rng.randint(1, max_kills))]
  if "checkpoint" not in plan:
    plan[rng.randrange(len(plan))] = "checkpoint"
  return plan


def _wait_for_moment(proc, workdir: str, moment: str, rng: random.Random, startup_s: float) -> bool:
  """Polls until `moment` comes (True) or the process ends first (False)."""
  floor = max(tt.checkpoint_steps(workdir)[0], default=0)
  # SIGTERM well before the end: after the loop the run exits normally anyway.
  last = tt.STEPS - 3 if moment == "sigterm" else tt.STEPS - 1
  target = rng.randint(floor + 1, last) if floor + 1 <= last else tt.STEPS
  # Which remaining checkpoint write to interrupt, and how far into it (writes take ~0.3-1 s
  # here). A write that ends sooner is missed, and the next one is interrupted at once; the
  # last write has no next one, so it is interrupted as soon as it starts.
  saves = [s for s in range(floor + 1, tt.STEPS + 1) if s % tt.EVERY == 0 or s == tt.STEPS] or [tt.STEPS]
  target_save = rng.choice(saves[:-1] or saves)
  into_write = rng.uniform(0, 0.5) if len(saves) > 1 else 0.0
  write_seen = None
  # Leftovers of the killed run (metrics lines past its checkpoint, a half-written
  # checkpoint) are dropped when the new run starts; only what it makes counts.
  fresh_log = tt.last_logged(workdir) <= floor
  fresh_dir = not tt.checkpoint_steps(workdir)[1]
  deadline = time.perf_counter() + (rng.uniform(0.2, startup_s) if moment == "startup" else 600)
  while proc.poll() is None:
    if moment == "startup":
      if time.perf_counter() >= deadline:
        return True
    elif moment in ("step", "sigterm"):
      logged = tt.last_logged(workdir)
      fresh_log = fresh_log or logged <= floor
      if fresh_log and logged >= target:
        time.sleep(rng.uniform(0, 0.05))
        return True
    else:
      writing = tt.checkpoint_steps(workdir)[1]
      fresh_dir = fresh_dir or not writing
      if fresh_dir and writing and writing[-1] >= target_save:
        write_seen = write_seen or time.perf_counter()
        if time.perf_counter() - write_seen >= into_write:
          return True
      elif write_seen is not None:  # that write ended first: interrupt the next one at once
        write_seen, into_write = None, 0.0
    time.sleep(_POLL_S)
  return False


def _check_kill(k: Kill, log: str, sync: bool) -> list[str]:
  found = _RESUMED.search(log)
  k.resumed = int(found[1]) if found else 0
  problems = []
  if k.resumed != k.finished:
    problems.append(f"resumed from {k.resumed}, but the newest complete checkpoint was {k.finished}")
  if sync:  # a save finishes before the next step runs
    if k.redone > tt.EVERY:
      problems.append(
        f"synchronous saves: killed at logged step {k.logged}, resumed from {k.resumed}: more than "
        f"one interval ({tt.EVERY}) redone"
      )
    return problems
  # Saves are asynchronous: checkpoint w is written while steps w+1.. run, and the
  # save of w waits for w-EVERY. So the resume point is never more than one
  # interval behind the newest checkpoint started before the kill.
  started = max(k.writing or 0, k.finished)
  if k.logged - k.resumed > tt.EVERY and k.resumed < started - tt.EVERY:
    problems.append(
      f"killed at logged step {k.logged} and resumed from {k.resumed}: more than one interval "
      f"({tt.EVERY}) behind checkpoint {started}"
    )
  return problems


def _check_sigterm(k: Kill, log: str) -> list[str]:
  """Pre-emption loses nothing: the step reached is saved, and the exit code says 'rerun me'."""
  problems = []
  if k.rc != EXIT_PREEMPTED:
    problems.append(f"SIGTERM: exit code {k.rc}, expected {EXIT_PREEMPTED}")
  if k.writing is not None or k.finished != k.logged:
    problems.append(
      f"SIGTERM at logged step {k.logged}: newest complete checkpoint {k.finished}, still writing {k.writing}"
    )
  if f"SIGTERM: saved step {k.finished};" not in log:
    problems.append(f"SIGTERM: no 'saved step {k.finished}' line in the log")
  return problems


def trial(
  dataset: str, workdir: str, reference: tt.Reference, seed: int, plan: list[str] | None = None, sync: bool = False
) -> Trial:
  """Trains to the end in `workdir`, SIGKILLed at the moments of `plan` (default: drawn from `seed`).

  `sync`: checkpoints written synchronously (train.async_checkpoints=False), checked against
  the strict one-interval bound.
  """
  rng = random.Random(seed)
  plan = list(plan) if plan is not None else draw_plan(rng)
  begin = time.perf_counter()
  os.makedirs(workdir + "-logs", exist_ok=True)
  kills, missed, problems = [], [], []
  starts = 0
  while True:
    log_path = os.path.join(workdir + "-logs", f"start-{starts}.log")
    proc = tt.launch(workdir, tt.flags(dataset, **({"train__async_checkpoints": False} if sync else {})), log_path)
    starts += 1
    moment = plan.pop(0) if plan else None
    came = moment is not None and _wait_for_moment(proc, workdir, moment, rng, reference.startup_s)
    if came and moment == "sigterm":
      os.killpg(proc.pid, signal.SIGTERM)
      proc.wait(timeout=600)
    elif came:
      tt.kill(proc)
    else:
      proc.wait()
    log = tt.read_log(log_path)
    # The restart's first lines say where it resumed (absent if it died before them).
    if kills and "training " in log:
      problems += _check_kill(kills[-1], log, sync)
    if came:
      finished, writing = tt.checkpoint_steps(workdir)
      kills.append(
        Kill(moment, tt.last_logged(workdir), max(finished, default=0), max(writing, default=None), proc.returncode)
      )
      if moment == "sigterm":
        problems += _check_sigterm(kills[-1], log)
      continue
    if moment is not None:
      missed.append(moment)
    if proc.returncode != 0:
      problems.append(f"start {starts} ended with rc {proc.returncode}: {log[-1500:]}")
    break
  problems += _final_checks(dataset, workdir, reference)
  return Trial(seed, kills, missed, starts, time.perf_counter() - begin, problems)


def _final_checks(dataset: str, workdir: str, reference: tt.Reference) -> list[str]:
  problems = []
  finished, writing = tt.checkpoint_steps(workdir)
  if not finished or finished[-1] != tt.STEPS:
    problems.append(f"finished checkpoints {finished}, expected the last to be {tt.STEPS}")
    return problems
  if writing:
    problems.append(f"temporary checkpoint folders left behind for steps {writing}")
  if tt.losses(workdir) != reference.losses:
    problems.append("metrics.jsonl losses differ from the uninterrupted run's")
  tree, _ = tt.variables(dataset, workdir)
  wrong = tt.differences(reference.variables, tree)
  if wrong:
    problems.append(f"final variables differ from the uninterrupted run's at {wrong[:5]}")
  return problems


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--trials", type=int, default=10)
  parser.add_argument("--seed", type=int, default=0, help="trial i uses seed + i")
  parser.add_argument("--keep", help="work here and keep everything (default: a temp folder, removed)")
  parser.add_argument(
    "--sync-checkpoints",
    action="store_true",
    help="synchronous saves (train.async_checkpoints=False): check the strict one-interval bound",
  )
  args = parser.parse_args(argv)
  from absl import logging  # pylint: disable=g-import-not-at-top

  logging.set_verbosity(logging.ERROR)  # Orbax warns about read-only restores
  root = args.keep or tempfile.mkdtemp(prefix="kill_resume-")
  os.makedirs(root, exist_ok=True)
  begin = time.perf_counter()
  dataset = tiny_run.make_dataset(os.path.join(root, "data"))
  reference = tt.reference_run(dataset, os.path.join(root, "reference"))
  print(
    f"reference: {tt.STEPS} steps, checkpoint every {tt.EVERY}, {reference.seconds:.0f} s "
    f"(first step after {reference.startup_s:.1f} s)",
    flush=True,
  )
  results = []
  for i in range(args.trials):
    result = trial(dataset, os.path.join(root, f"trial-{i}"), reference, args.seed + i, sync=args.sync_checkpoints)
    results.append(result)
    print(result.describe(), flush=True)
  kills = [k for r in results for k in r.kills]
  failed = [r for r in results if r.problems]
  redone = [k.redone for k in kills if k.redone is not None]
  print(
    f"{len(results) - len(failed)}/{len(results)} trials passed; {len(kills)} kills "
    f"({', '.join(f'{sum(k.moment == m for k in kills)} {m}' for m in MOMENTS)}); steps redone per kill: "
    f"max {max(redone, default=0)}, mean {np.mean(redone) if redone else 0:.1f} (interval {tt.EVERY}, "
    f"{'synchronous' if args.sync_checkpoints else 'asynchronous'} saves); "
    f"{time.perf_counter() - begin:.0f} s"
  )
  if not args.keep:
    import shutil  # pylint: disable=g-import-not-at-top

    shutil.rmtree(root, ignore_errors=True)
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
