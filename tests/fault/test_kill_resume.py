"""Kill and resume, smoke size: SIGTERM saves and says 'rerun me', SIGKILL during a checkpoint
write or after a random step loses at most what the design allows, and every interrupted run
ends bit-identical to the uninterrupted one. `kill_resume.py --trials 10` is the full version."""

from fault import kill_resume
from fault import tiny_training


def _passed(result):
  assert not result.problems, result.describe()
  assert not result.missed, result.describe()  # every planned stop happened before the run ended
  return result.kills


def test_sigterm_saves_then_a_kill_mid_checkpoint_write_resumes_bit_identical(dataset, reference, tmp_path):
  sigterm, mid_write = _passed(
    kill_resume.trial(dataset, str(tmp_path / "run"), reference, seed=1, plan=["sigterm", "checkpoint"])
  )
  # SIGTERM: the step reached was saved (nothing to redo), exit code 143.
  assert sigterm.rc == kill_resume.EXIT_PREEMPTED
  assert 0 < sigterm.logged == sigterm.finished == sigterm.resumed < tiny_training.STEPS
  # SIGKILL while checkpoint `writing` was half on disk: the restart took the newest
  # complete one instead, and the half one is gone (checked at the end of the trial).
  assert mid_write.rc == -9
  assert mid_write.writing is not None and mid_write.writing > mid_write.finished == mid_write.resumed
  assert mid_write.resumed >= mid_write.writing - tiny_training.EVERY


def test_kill_after_a_random_step_resumes_from_the_newest_complete_checkpoint(dataset, reference, tmp_path):
  (kill,) = _passed(kill_resume.trial(dataset, str(tmp_path / "run"), reference, seed=2, plan=["step"]))
  assert kill.rc == -9 and kill.resumed == kill.finished
  in_flight = kill.logged - kill.writing if kill.writing is not None else 0
  assert kill.redone <= tiny_training.EVERY + in_flight


def test_synchronous_saves_bound_a_kill_mid_write_to_one_interval(dataset, reference, tmp_path):
  (mid_write, kill) = _passed(
    kill_resume.trial(dataset, str(tmp_path / "run"), reference, seed=3, plan=["checkpoint", "step"], sync=True)
  )
  assert mid_write.writing is not None and mid_write.resumed == mid_write.finished
  for k in (mid_write, kill):
    assert k.redone <= tiny_training.EVERY, k.describe()
