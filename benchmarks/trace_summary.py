"""Where the time goes in a jax.profiler trace: busy time per device/stream and the costliest ops, as JSON.

  python3 benchmarks/trace_summary.py PROFILE_DIR_OR_TRACE_JSON_GZ [--top 25] [--steps 3]

Reads the Chrome-format `*.trace.json.gz` that `jax.profiler.trace` writes (e.g. `model_speed.py
--profile-dir`, or the `profile.tar.gz` that `gpu_checks.sh speed` brings back, unpacked), so a GPU trace
can be read on any machine without TensorBoard. For each process (`/device:GPU:0`, `/host:CPU`, ...) it
reports the span of the trace, the time its streams were busy (overlapping events merged, so nested host
spans count once), and the top ops by total duration, grouped by the HLO op when the event names one.
`--steps` divides totals into per-step figures (the trace holds that many train steps).
"""

import argparse
import collections
import glob
import gzip
import json
import os
import sys


def find_trace(path: str) -> str:
  if os.path.isfile(path):
    return path
  found = sorted(glob.glob(os.path.join(path, "**", "*.trace.json.gz"), recursive=True))
  if not found:
    raise SystemExit(f"error: {path}: no *.trace.json.gz under it (expected a jax.profiler trace directory)")
  return found[-1]  # the newest session: its folder is named by date


def _busy(intervals) -> float:
  """Total length of the union of (start, end) intervals."""
  total, end = 0.0, float("-inf")
  for s, e in sorted(intervals):
    if s > end:
      total += e - s
      end = e
    elif e > end:
      total += e - end
      end = e
  return total


def summarize(trace_path: str, top: int = 25, steps: int = 1) -> dict:
  with gzip.open(trace_path, "rt") as f:
    events = json.load(f).get("traceEvents", [])
  names = {
    e["pid"]: e.get("args", {}).get("name", str(e["pid"]))
    for e in events
    if e.get("ph") == "M" and e.get("name") == "process_name"
  }
  spans = [e for e in events if e.get("ph") == "X" and "dur" in e]
  report = {"trace": trace_path, "steps": steps, "processes": {}}
  for pid in sorted({e["pid"] for e in spans}):
    mine = [e for e in spans if e["pid"] == pid]
    start = min(e["ts"] for e in mine)
    end = max(e["ts"] + e["dur"] for e in mine)
    by_stream = collections.defaultdict(list)
    by_op = collections.defaultdict(lambda: [0.0, 0])
    for e in mine:
      by_stream[e.get("tid")].append((e["ts"], e["ts"] + e["dur"]))
      args = e.get("args", {})
      key = args.get("hlo_op") or args.get("long_name") or e["name"]
      by_op[key][0] += e["dur"]
      by_op[key][1] += 1
    ops = sorted(by_op.items(), key=lambda kv: -kv[1][0])[:top]
    report["processes"][names.get(pid, str(pid))] = {
      "span_ms": round((end - start) / 1e3, 3),
      "busy_ms_per_stream": {str(t): round(_busy(iv) / 1e3, 3) for t, iv in by_stream.items()},
      "events": len(mine),
      "top_ops": [
        {"op": k, "total_ms": round(v[0] / 1e3, 3), "ms_per_step": round(v[0] / 1e3 / steps, 3), "count": v[1]}
        for k, v in ops
      ],
    }
  return report


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("path", help="a profile directory or one *.trace.json.gz")
  parser.add_argument("--top", type=int, default=25)
  parser.add_argument("--steps", type=int, default=3, help="train steps in the trace (model_speed traces 3)")
  args = parser.parse_args(argv)
  print(json.dumps(summarize(find_trace(args.path), args.top, max(args.steps, 1)), indent=1))
  return 0


if __name__ == "__main__":
  sys.exit(main())
