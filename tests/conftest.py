"""Fixtures shared by every test folder.

The suite runs under `pytest -n 2`, where every worker builds its own session fixtures; `run_once` makes the
expensive ones happen once per session instead (the first worker computes, the others wait for it and read the
JSON it left). Support modules (tiny_run, model_helpers, fake_layouts, torch_twin, sharded_steps) sit beside this
file and are importable from every folder (pyproject's pytest `pythonpath`).
"""

import fcntl
import json
import os

from fault import tiny_training
import pytest
import tiny_run


@pytest.fixture(scope="session")
def run_once(tmp_path_factory):
  """run_once(name, make): make(folder) -> JSON-able value, computed once per test session."""
  base = tmp_path_factory.getbasetemp()
  if "PYTEST_XDIST_WORKER" in os.environ:
    base = base.parent  # the session's folder, shared by its workers

  def once(name, make):
    with open(base / f"{name}.lock", "w") as lock:
      fcntl.flock(lock, fcntl.LOCK_EX)
      done = base / f"{name}.json"
      if not done.exists():
        folder = base / name
        folder.mkdir()
        done.write_text(json.dumps(make(str(folder))))
      return json.loads(done.read_text())

  return once


@pytest.fixture(scope="session")
def tiny_dataset(run_once) -> str:
  """tests/tiny_run.py's default dataset (2 training and 1 test 32x32 grey videos), made once; read-only."""
  return run_once("tiny_dataset", lambda folder: tiny_run.make_dataset(os.path.join(folder, "data")))


@pytest.fixture(scope="session")
def tiny_training_run(run_once, tiny_dataset) -> dict:
  """tests/fault/tiny_training.py's uninterrupted run through the command line, made once; read-only.

  {"dataset", "workdir", "losses", "startup_s", "seconds"}: what kills, resumes and reruns are compared with.
  """

  def make(folder):
    ref = tiny_training.reference_run(tiny_dataset, os.path.join(folder, "run"))
    return {
      "dataset": tiny_dataset,
      "workdir": ref.workdir,
      "losses": ref.losses,
      "startup_s": ref.startup_s,
      "seconds": ref.seconds,
    }

  return run_once("fault_reference", make)
