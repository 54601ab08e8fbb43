"""Rendering time, page faults and peak memory of a synthetic set, with and without the glibc
allocator setting of `sagan.data.synthetic.build._retain_freed_memory`.

Each measurement runs in a fresh process (the setting is process-wide and cannot be undone), the
two variants alternate so that a neighbour's load hits both alike.

    python benchmarks/synthetic_render.py [--datasets synth-vindr,synth-lag] [--workers 1,2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CHILD = r"""
import json, resource, sys, tempfile, time
import sagan.data.synthetic.build as build

name, workers, tune = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "on"
if not tune:
    build._retain_freed_memory = lambda: None  # the render workers fork from here and see it too
with tempfile.TemporaryDirectory() as d:
    t = time.perf_counter()
    build.write_medad_folder(name, d, seed=0, size="small", workers=workers, png_level=0)
    seconds = time.perf_counter() - t
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"seconds": seconds, "faults": me.ru_minflt + kids.ru_minflt,
                  "peak_mb": max(me.ru_maxrss, kids.ru_maxrss) / 1024}))
"""


def measure(name: str, workers: int, tune: bool) -> dict:
    args = [sys.executable, "-c", CHILD, name, str(workers), "on" if tune else "off"]
    return json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="synth-vindr,synth-lag")
    p.add_argument("--workers", default="1,2")
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    print("| dataset | workers | allocator setting | s (median) | minor page faults | peak RSS (MB) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in a.datasets.split(","):
        for workers in map(int, a.workers.split(",")):
            runs: dict[bool, list[dict]] = {True: [], False: []}
            for _ in range(a.repeats):
                for tune in (True, False):
                    runs[tune].append(measure(name, workers, tune))
            for tune in (True, False):
                r = runs[tune]
                print(
                    f"| {name} | {workers} | {'on' if tune else 'off'} | "
                    f"{statistics.median(x['seconds'] for x in r):.2f} | "
                    f"{statistics.median(x['faults'] for x in r):,.0f} | {max(x['peak_mb'] for x in r):.0f} |"
                )


if __name__ == "__main__":
    main()
