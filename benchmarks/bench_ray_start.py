"""The private Ray's start: Ray's own node against the sweep's, side by side.

Every sweep without ``--address`` starts its own Ray through a keeper process
(``python -m tuning.ray_runtime``). This script starts that node in a fresh Python process,
round after round, alternating two ways:

* ``ray``: Ray's own ``ray._private.node.Node`` with the keeper's settings. It starts an API
  server (which loads only the usage-statistics module when the dashboard is off) and waits
  for it before it starts the raylet; then it checks the raylet's registration once a second.
* ``ours``: the keeper's node (``tuning.ray_runtime._start_node``): no API server, and the
  registration awaited every 20 ms.

Reported per way: seconds from the process's start to a node ready for a driver (imports
included, as the keeper has them), median and range over the rounds, and the ratio. A node
is stopped before the next starts. Target (issue 7, with the first trial's start and Ray's
stop): a sweep's fixed cost under 8 s on 2 cores; ``bench_search.py`` measures that whole.

    python benchmarks/bench_ray_start.py              # 8 rounds of each
    python benchmarks/bench_ray_start.py --rounds 2   # a quick look
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import sys, time
from tuning import ray_runtime
node = ray_runtime._start_node(quick=sys.argv[1] == "ours")
print(time.time(), flush=True)
node.kill_all_processes(check_alive=False, allow_graceful=True)
"""


def start_once(way: str) -> float:
    """Seconds from spawning a fresh Python to its node being ready."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    start = time.time()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, way], env=env, cwd=ROOT, capture_output=True, text=True, check=True, timeout=180
    ).stdout
    return float(out.split()[0]) - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=8, help="starts of each way, alternating (default: %(default)s)")
    args = p.parse_args(argv)
    print(f"bench_ray_start: {args.rounds} rounds; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.2f}", flush=True)
    times: dict[str, list[float]] = {"ray": [], "ours": []}
    for i in range(args.rounds):
        for way in ("ray", "ours") if i % 2 == 0 else ("ours", "ray"):
            times[way].append(start_once(way))
        print(f"round {i + 1}: ray {times['ray'][-1]:.2f} s, ours {times['ours'][-1]:.2f} s", flush=True)
    med = {way: statistics.median(t) for way, t in times.items()}
    for way, t in times.items():
        print(f"{way:5s} ready after {med[way]:.2f} s (median; {min(t):.2f}-{max(t):.2f})")
    print(f"ours / ray: {med['ours'] / med['ray']:.2f}x, {med['ray'] - med['ours']:.2f} s sooner; "
          f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
