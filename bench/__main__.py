"""`make bench`: starts the stack once, runs every section (each measures the service and its
baseline side by side), prints one table, and writes bench/results/bench.json and bench.png.

    python -m bench [--quick] [--only SECTION ...] [--out DIR]
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import psutil

from bench.common import Bench, Figure
from taskscheduler.devstack.stack import Stack, on_free_ports

RESULTS = Path(__file__).parent / "results"
SECTIONS = (
    "accept",
    "eventloop",
    "throughput",
    "brokers",
    "workflows",
    "streams",
    "lateness",
    "scale",
    "peers",
)
WORKER_PROCESSES = 2


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, object]:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "system": platform.platform(terse=True),
    }


def run(sections: list[str], quick: bool, log: IO[str] | None) -> list[Figure]:
    data_dir = Path(tempfile.mkdtemp(prefix="taskscheduler-bench-"))
    config = on_free_ports(
        data_dir,
        worker_concurrency=WORKER_PROCESSES,
        # Set, the stack uses these servers (a database of its own: it is migrated and filled).
        database_url=os.environ.get("DATABASE_URL"),
        redis_url=os.environ.get("REDIS_URL"),
        extra_env={"TASKSCHED_RATE_LIMIT_RPS": "0"},  # measure the service, not its limiter
        log_stream=log or io.StringIO(),
    )
    stack = Stack(config)
    figures: list[Figure] = []
    try:
        stack.start()
        bench = Bench(stack=stack, quick=quick)
        for name in sections:
            measure: Callable[[Bench], list[Figure]] = importlib.import_module(
                f"bench.{name}"
            ).measure
            started = time.monotonic()
            print(f"-- {name} ...", file=sys.stderr, flush=True)
            figures.extend(replace(figure, section=name) for figure in measure(bench))
            print(f"-- {name}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    finally:
        stack.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    return figures


def table(figures: list[Figure]) -> str:
    header = ("figure", "service", "baseline (same run)", "ratio", "target", "met")
    rows = [header]
    for figure in figures:
        baseline = "" if figure.baseline is None else f"{figure.baseline:,.1f} {figure.unit}"
        if figure.baseline_name:
            baseline += f" ({figure.baseline_name})"
        ratio = "" if figure.ratio is None else f"{figure.ratio:.2f}x"
        met = {True: "yes", False: "NO", None: ""}[figure.met]
        service = f"{figure.service:,.1f} {figure.unit}"
        rows.append((figure.name, service, baseline, ratio, figure.target, met))
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    lines.insert(1, "|" + "|".join(" --- " for _ in header) + "|")
    return "\n".join(lines)


def chart(figures: list[Figure], path: Path) -> None:
    """Two panels: rates (higher is better) and latencies (lower is better), each the service
    beside its baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("throughput (higher is better)", [f for f in figures if f.unit.endswith("/s")]),
        ("latency (lower is better)", [f for f in figures if f.unit == "ms"]),
    ]
    fig, axes = plt.subplots(1, 2, figsize=(15, 6))
    for axis, (title, group) in zip(axes, panels, strict=True):
        names = [f.name for f in group]
        positions = range(len(group))
        axis.barh([p + 0.2 for p in positions], [f.service for f in group], 0.4, label="service")
        axis.barh(
            [p - 0.2 for p in positions],
            [f.baseline or 0 for f in group],
            0.4,
            label="baseline",
        )
        axis.set_yticks(list(positions), names, fontsize=8)
        axis.set_title(title)
        axis.set_xscale("log")
        axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run on small counts")
    parser.add_argument("--only", nargs="*", choices=SECTIONS, help="these sections only")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the results")
    parser.add_argument("--verbose", action="store_true", help="print the stack's logs")
    args = parser.parse_args()
    sections = list(args.only or SECTIONS)
    log = sys.stderr if args.verbose else None
    figures = run(sections, args.quick, log)
    print(table(figures))
    args.out.mkdir(parents=True, exist_ok=True)
    name = "bench-quick" if args.quick else "bench"
    document = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": machine(),
        "worker_processes": WORKER_PROCESSES,
        "figures": [figure.as_json() for figure in figures],
    }
    (args.out / f"{name}.json").write_text(json.dumps(document, indent=2) + "\n")
    chart(figures, args.out / f"{name}.png")
    print(f"written: {args.out / name}.json, {args.out / name}.png")


if __name__ == "__main__":
    main()
