"""Runs shared by the fault tests: one uninterrupted reference run on the session's tiny dataset."""

import os

import pytest

from fault import tiny_training


@pytest.fixture(scope="session")
def _shared_reference(run_once, tiny_dataset):
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
