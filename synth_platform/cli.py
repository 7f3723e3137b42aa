"""`python -m synth_platform <command>`: the demo run and the file utilities."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from synth_platform.fileutils import commands as file_commands
from synth_platform.resources import data_dir
from synth_platform.specs import load_platform


def demo(args: argparse.Namespace) -> int:
    """Backfill the demo window of every asset through Dagster, so the runs show up in the UI."""
    world = load_platform().world
    today = datetime.now(UTC).date()
    first = max(world.start_date, today - timedelta(days=world.demo_days - 1))
    tags = {
        "dagster/asset_partition_range_start": first.isoformat(),
        "dagster/asset_partition_range_end": today.isoformat(),
    }
    print(f"materializing every asset for {first} .. {today} (UTC) through Dagster ...", flush=True)
    cmd = [
        os.path.join(os.path.dirname(sys.executable), "dagster"),
        "job", "execute", "-m", "synth_platform.definitions", "-j", "main_job", "--tags", json.dumps(tags),
    ]  # fmt: skip
    code = subprocess.call(cmd)
    if code:
        print(f"\nthe run failed (exit {code}); its logs are above and in the UI (make dev)", file=sys.stderr)
        return code
    print(
        f"\ndone. Data is under {data_dir()}:\n"
        f"  SQL database  {os.environ.get('SYNTH_DATABASE_URL') or data_dir() / 'synth.db'}\n"
        f"Open the UI with `make dev` (http://127.0.0.1:3000); this run is in its Runs history."
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synth_platform", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="backfill the demo window of every asset (what `make run` does)").set_defaults(
        func=demo
    )
    file_commands.register(commands)
    args = parser.parse_args(argv)
    return args.func(args)
