"""Predict many scenes on SLURM through dask-jobqueue (pip install 'jess-geo[dask]' dask-jobqueue).

Run it on a login node (it submits the worker jobs itself):

    python predict_jobqueue.py /shared/scenes/*.tif --model /shared/models/model.pt --out /shared/maps --jobs 8
"""

from __future__ import annotations

import argparse

from dask_jobqueue import SLURMCluster
from distributed import Client

from jess_geo.inference.batch import predict_many


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("scenes", nargs="+")
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--jobs", type=int, default=4, help="SLURM jobs = Dask workers")
    ap.add_argument("--cores", type=int, default=16, help="cores per job = torch threads per worker")
    ap.add_argument("--block-size", type=int, default=None)
    args = ap.parse_args()

    cluster = SLURMCluster(
        cores=args.cores, processes=1,           # one worker process per job, one scene at a time
        memory="32GB", walltime="02:00:00",
        job_extra_directives=["--partition=cpu"],
        worker_extra_args=["--nthreads", "1"],   # the scene task is parallel inside (torch threads)
        job_script_prologue=["source $HOME/venvs/jess-geo/bin/activate"],
    )
    cluster.scale(jobs=args.jobs)
    with Client(cluster) as client:
        records = predict_many(args.scenes, args.model, output_dir=args.out, client=client,
                               threads_per_worker=args.cores, block_size=args.block_size,
                               on_record=lambda r, p: print(f"[{p.done}/{p.total}] {r.scene}: {r.status} {r.error or ''}"))
    cluster.close()
    failed = [r for r in records if not r.ok]
    print(f"{len(records) - len(failed)} of {len(records)} scenes done; summary in {args.out}/predict_summary.csv")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
