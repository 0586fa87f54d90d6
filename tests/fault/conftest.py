"""Runs shared by the fault tests: one tiny dataset and one uninterrupted reference run.

The suite runs under `pytest -n 2`, where every worker builds its own session
fixtures; `run_once` makes the expensive ones happen once per session instead
(the first worker computes, the others wait for it and read the JSON it left).
"""

import fcntl
import json
import os

import pytest
import tiny_run

from fault import tiny_training


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
def _shared_reference(run_once):
  def make(folder):
    dataset = tiny_run.make_dataset(os.path.join(folder, "data"))
    ref = tiny_training.reference_run(dataset, os.path.join(folder, "run"))
    return {
      "dataset": dataset,
      "workdir": ref.workdir,
      "losses": ref.losses,
      "startup_s": ref.startup_s,
      "seconds": ref.seconds,
    }

  return run_once("fault_reference", make)


@pytest.fixture(scope="session")
def dataset(_shared_reference):
  return _shared_reference["dataset"]


@pytest.fixture(scope="session")
def reference(_shared_reference):
  """The uninterrupted run (CLI, CPU) that kills, resumes and reruns are compared with."""
  shared = _shared_reference
  variables, _ = tiny_training.variables(shared["dataset"], shared["workdir"])
  return tiny_training.Reference(
    shared["workdir"], [tuple(x) for x in shared["losses"]], variables, shared["startup_s"], shared["seconds"]
  )
