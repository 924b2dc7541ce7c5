"""Detect events in a corpus on a SLURM (or PBS) cluster: dask-jobqueue submits the Dask
workers as batch jobs, and earmark sends them one task per recording.

    python examples/slurm_detect.py runs/seven /shared/recordings --out /shared/detections \\
        --jobs 20 --cores 8 --memory 16GB --walltime 04:00:00 --queue normal

Each batch job runs ``--cores`` Dask workers of one thread each (one recording at a time
per core; the model is loaded once per worker). The scheduler runs here, in this script,
so run it where the compute nodes can reach you (a login node). The recordings, the model
and this Python environment must be on a file system every node sees, at the same paths;
the tables are written to ``--out`` from here. ``--resume`` continues a run that stopped.
``--print-job-script`` prints the batch script a job would run and submits nothing.
``--pbs`` uses PBS (``qsub``) instead of SLURM (``sbatch``).

Needs the dask extra: ``pip install 'earmark[dask]'``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def make_cluster(
    *,
    pbs: bool = False,
    cores: int = 4,
    memory: str = "8GB",
    walltime: str = "02:00:00",
    queue: str | None = None,
    account: str | None = None,
    python: str = sys.executable,
    log_directory: str | None = None,
    dashboard: str = ":8787",
) -> Any:
    """The dask-jobqueue cluster (no job submitted yet): per job, ``cores`` worker
    processes of one thread each sharing ``memory``; the scheduler runs here, its dashboard
    (when bokeh is installed) on ``dashboard``."""
    try:
        from dask_jobqueue import PBSCluster, SLURMCluster
    except ImportError:
        sys.exit("error: this example needs dask-jobqueue: pip install 'earmark[dask]'")
    cls = PBSCluster if pbs else SLURMCluster
    return cls(
        cores=cores,
        processes=cores,  # one process per core, one thread each: torch uses one core
        memory=memory,
        walltime=walltime,
        queue=queue,
        account=account,
        python=python,  # this environment's Python, with earmark installed
        job_name="earmark-detect",
        log_directory=log_directory,
        # One thread per worker; big arrays from the heap, not a fresh mmap each time (the
        # nanny's MALLOC_TRIM_THRESHOLD_ would otherwise make scans ~1.7x slower: see
        # earmark.distributed.TRIM_SETTING).
        job_script_prologue=[
            "export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 MALLOC_MMAP_THRESHOLD_=67108864"
        ],
        scheduler_options={"dashboard_address": dashboard},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="model directory (or .onnx file)")
    parser.add_argument("inputs", type=Path, nargs="+", help="recordings, or folders of them")
    parser.add_argument("--out", type=Path, required=True, help="folder for the tables")
    parser.add_argument("--jobs", type=int, default=4, help="batch jobs to run (default 4)")
    parser.add_argument("--cores", type=int, default=4, help="cores (workers) per job")
    parser.add_argument("--memory", default="8GB", help="memory per job")
    parser.add_argument("--walltime", default="02:00:00", help="time limit per job")
    parser.add_argument("--queue", help="partition / queue")
    parser.add_argument("--account", help="account to charge")
    parser.add_argument("--logs", help="folder for the jobs' logs")
    parser.add_argument("--pbs", action="store_true", help="PBS instead of SLURM")
    parser.add_argument("--hop", type=float, help="seconds between windows")
    parser.add_argument("--threshold", type=float, help="score to fire")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument(
        "--print-job-script", action="store_true", help="print a job's script; submit nothing"
    )
    args = parser.parse_args(argv)

    cluster = make_cluster(
        pbs=args.pbs,
        cores=args.cores,
        memory=args.memory,
        walltime=args.walltime,
        queue=args.queue,
        account=args.account,
        log_directory=args.logs,
    )
    with cluster:
        if args.print_job_script:
            print(cluster.job_script())
            return 0
        cluster.scale(jobs=args.jobs)  # submits the jobs; tasks start as workers arrive

        from earmark import distributed
        from earmark.errors import EarmarkError

        given = {"hop": args.hop, "threshold": args.threshold}
        settings = {k: v for k, v in given.items() if v is not None}
        try:
            with distributed.Engine(scheduler=cluster.scheduler_address) as engine:
                summary = distributed.detect(
                    args.run,
                    args.inputs,
                    args.out,
                    engine=engine,
                    settings=settings,
                    resume=args.resume,
                    on_file=lambda path, seconds: print(f"done {path}", flush=True),
                )
        except EarmarkError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print(
        f"{summary.files} recordings ({summary.resumed} already done, {summary.scored} scored,"
        f" {summary.failed} unreadable), {len(summary.events)} events -> {args.out}"
    )
    return 3 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
