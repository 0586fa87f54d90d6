"""Runs shared by the fault tests: one uninterrupted reference run on the session's tiny dataset (tests/conftest.py's
tiny_training_run, which tests/train/test_resume.py compares with too)."""

import pytest

from fault import tiny_training


@pytest.fixture(scope="session")
def dataset(tiny_training_run):
  return tiny_training_run["dataset"]


@pytest.fixture(scope="session")
def reference(tiny_training_run):
  """The uninterrupted run (CLI, CPU) that kills, resumes and reruns are compared with."""
  shared = tiny_training_run
  variables, _ = tiny_training.variables(shared["dataset"], shared["workdir"])
  return tiny_training.Reference(
    shared["workdir"], [tuple(x) for x in shared["losses"]], variables, shared["startup_s"], shared["seconds"]
  )
