"""Mesh, batch sharding and multi-process detection; 1 device vs 4 simulated devices."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import sharded_steps
import tiny_run

from maskedskip_jax.errors import UserError
from maskedskip_jax.train import compile_cache
from maskedskip_jax.train import sharding

compile_cache.enable(tiny_run.JAX_CACHE)  # reruns skip the compiles


def test_four_simulated_devices_give_the_losses_and_params_of_one(tmp_path):
  out = tmp_path / "four.npz"
  env = tiny_run.env(XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
  proc = subprocess.run(
    [sys.executable, os.path.join(tiny_run.REPO, "tests", "sharded_steps.py"), str(out)],
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
    check=False,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  four = dict(np.load(out))
  one = sharded_steps.run()
  assert int(four.pop("devices")) == 4 and int(one.pop("devices")) == 1
  assert four.pop("uneven_batch_error") == "config key train.batch_size: expected a multiple of the 4 devices, got 6"
  losses, losses4 = one.pop("losses"), four.pop("losses")
  assert losses[-1] < losses[0]  # it trained
  # Step 1 sees identical parameters, so its loss and its change to every parameter and batch
  # statistic agree to rounding. A gradient summed over the batch can cancel to far below its
  # terms, so the bound is relative to each leaf's largest change: a sharding bug (a gradient
  # or BatchNorm statistic taken over one device's quarter of the batch) is off by O(1) of it.
  np.testing.assert_allclose(losses4[:2], losses[:2], rtol=1e-5)
  assert set(four) == set(one)
  assert max(np.abs(change).max() for change in one.values()) > 1e-3  # the step moved things
  for key, change in one.items():
    # The floor is two float32 ulps at 1.0, the largest parameter size here (BatchNorm scales):
    # a change is new - old, rounded at the parameter's own size.
    ulps = 2 * np.spacing(np.float32(1.0))
    np.testing.assert_allclose(four[key], change, rtol=0, atol=max(1e-4 * np.abs(change).max(), ulps), err_msg=key)
  # Later steps: BatchNorm over near-constant channels of this tiny net amplifies the
  # different summation order of 4 devices, ~1e-4 relative per step.
  np.testing.assert_allclose(losses4, losses, rtol=2e-3)


def test_prefetch_keeps_order_and_values():
  mesh = sharding.make_mesh()
  data = [{"clips": np.full((2, 1, 4, 4, 1), i, np.float32)} for i in range(5)]
  got = list(sharding.prefetch(iter(data), sharding.batch_sharding(mesh), size=3))
  assert len(got) == 5
  for i, batch in enumerate(got):
    assert isinstance(batch["clips"], jax.Array)
    np.testing.assert_array_equal(np.asarray(batch["clips"]), data[i]["clips"])


def test_shardings_are_data_parallel():
  mesh = sharding.make_mesh()
  assert mesh.axis_names == ("data",) and mesh.devices.size == jax.device_count()
  assert sharding.replicated(mesh).spec == jax.sharding.PartitionSpec()
  assert sharding.batch_sharding(mesh).spec == jax.sharding.PartitionSpec("data")


@pytest.mark.parametrize(
  "env, expected",
  [
    ({}, False),
    ({"SLURM_STEP_NUM_TASKS": "1"}, False),
    ({"SLURM_STEP_NUM_TASKS": "4"}, True),
    ({"OMPI_COMM_WORLD_SIZE": "2"}, True),
    ({"TPU_WORKER_HOSTNAMES": "localhost"}, False),
    ({"TPU_WORKER_HOSTNAMES": "host-0,host-1"}, True),
    ({"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234"}, True),
  ],
)
def test_multiprocess_launch_is_detected_from_the_environment(env, expected):
  assert sharding.launched_multiprocess(env) is expected


def test_single_process_does_not_initialize_distributed():
  assert sharding.initialize(env={}) is False


def test_partial_distributed_flags_are_refused():
  with pytest.raises(UserError, match="go together"):
    sharding.initialize("localhost:1234", None, None, env={})
  with pytest.raises(UserError, match="--process_id"):
    sharding.initialize("localhost:1234", 2, 2, env={})
