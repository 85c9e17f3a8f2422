"""Serve the scoring flow on a schedule (nightly batch) against a Prefect server.

Usage::

    prefect server start                       # or use Prefect Cloud / an existing server
    export PREFECT_API_URL=http://127.0.0.1:4200/api
    python -m flows.serve --inputs /data/calls --out /data/scored --cron "0 2 * * *"

The process stays up and runs the flow at each scheduled time; runs, logs and retries
show in the Prefect UI. For a work-pool deployment use ``score_calls.deploy(...)`` instead.
"""

from __future__ import annotations

import argparse

from flows.score_flow import score_calls
from pipeline.paths import DEFAULT_INPUTS, DEFAULT_OUT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", nargs="+", default=[str(DEFAULT_INPUTS)], help="Files, folders or globs to score.")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="Output folder.")
    parser.add_argument("--models", default=None, help="Models folder (CURRENT); default: shipped.")
    parser.add_argument("--cron", default="0 2 * * *", help="Cron schedule (default: 02:00 every night).")
    parser.add_argument("--name", default="nightly-call-scoring", help="Deployment name.")
    args = parser.parse_args()
    score_calls.serve(name=args.name, cron=args.cron,
                      parameters={"inputs": args.inputs, "out_dir": args.out, "models": args.models})


if __name__ == "__main__":
    main()
