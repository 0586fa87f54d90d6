"""Many command lines, each in a process of its own, forked from one that has imported the heavy libraries once.

`python -m maskedskip_jax.<module> ...` spends one to three seconds of CPU importing NumPy, OpenCV, JAX, Flax, Optax
and Orbax before it reads its arguments, and the error-path tests run dozens of command lines. `run` starts one
Python process that imports those libraries once, then forks a child per command line. The child does what
`python -m <module> <args>` does: it runs the module as __main__ (runpy, sys.argv set to the command line) and ends as
the interpreter ends such a run, an uncaught exception printing its traceback and exiting 1, `sys.exit(message)`
printing the message and exiting 1. The parent only imports: it never runs a JAX computation (no JAX backend and
none of its threads exist yet, so forking is safe), and no module a command line runs as __main__ is imported before
the fork.
"""

import json
import os
import signal
import subprocess
import sys

import tiny_run

# The libraries every entry point imports, in the parent; what each command line runs is imported in its child.
# (Their only threads are the idle pools of the BLAS libraries, which are fork-safe.)
_PRELOAD = ("numpy", "cv2", "jax", "flax.linen", "optax", "orbax.checkpoint", "maskedskip_jax.app")

_PARENT = r"""
import json, os, runpy, sys
import importlib
cases, jobs, preload = json.loads(sys.stdin.read())
for name in preload:
  importlib.import_module(name)
running, codes = {}, [None] * len(cases)

def reap():
  pid, status = os.wait()
  codes[running.pop(pid)] = os.waitstatus_to_exitcode(status)

for i, (module, args, stdout, stderr) in enumerate(cases):
  if module in sys.modules:
    raise RuntimeError(f"{module} was imported before the fork: runpy would not run it afresh")
  while len(running) >= jobs:
    reap()
  sys.stdout.flush()
  sys.stderr.flush()
  pid = os.fork()
  if pid == 0:  # the child: `python -m module args`, to the end of the interpreter
    for fd, path in ((1, stdout), (2, stderr)):
      os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    sys.exit(0)
  running[pid] = i
while running:
  reap()
print(json.dumps(codes))
"""


def run(cases, folder: str, jobs: int = 2, timeout: float = 600, **extra_env) -> list[dict]:
  """cases: (module, args) pairs; -> [{"rc", "stdout", "stderr"}] in their order. Output files go to `folder`."""
  os.makedirs(folder, exist_ok=True)
  spec = []
  for i, (module, args) in enumerate(cases):
    spec.append([module, [str(a) for a in args], os.path.join(folder, f"{i}.out"), os.path.join(folder, f"{i}.err")])
  proc = subprocess.Popen(
    [sys.executable, "-c", _PARENT],
    cwd=tiny_run.REPO,
    env=tiny_run.env(**extra_env),
    stdin=subprocess.PIPE,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
    start_new_session=True,  # a timeout ends the children too
  )
  try:
    out, err = proc.communicate(json.dumps([spec, jobs, _PRELOAD]), timeout=timeout)
  except subprocess.TimeoutExpired:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    raise
  if proc.returncode != 0:
    raise RuntimeError(f"the forking parent failed (rc {proc.returncode}):\n{err[-3000:]}")
  codes = json.loads(out.strip().splitlines()[-1])
  results = []
  for (_, _, stdout, stderr), rc in zip(spec, codes):
    with open(stdout, errors="replace") as f, open(stderr, errors="replace") as g:
      results.append({"rc": rc, "stdout": f.read(), "stderr": g.read()})
  return results
