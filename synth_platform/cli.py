"""`python -m synth_platform <command>`: the demo run, the dev server and the file utilities."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta

# The platform's modules are imported by the commands that use them: `dev` only waits beside the server, and
# `demo` hands the work to a `dagster` process that imports them again.


def demo(args: argparse.Namespace) -> int:
    """Backfill the demo window of every asset through Dagster, so the runs show up in the UI."""
    from synth_platform.domains import load_platform
    from synth_platform.resources import data_dir

    world = load_platform().world
    today = datetime.now(UTC).date()
    first = max(world.start_date, today - timedelta(days=world.demo_days - 1))
    print(f"materializing every asset for {first} .. {today} (UTC) through Dagster ...", flush=True)
    tags = {
        "dagster/asset_partition_range_start": first.isoformat(),
        "dagster/asset_partition_range_end": today.isoformat(),
    }
    dagster = os.path.join(os.path.dirname(sys.executable), "dagster")
    cmd = [dagster, "job", "execute", "-m", "synth_platform.definitions", "-j", "main_job", "--tags", json.dumps(tags)]
    # `dg launch --partition-range` refuses a job whose assets are not all single-run backfills, so this is still
    # the command that runs main_job over the range in one run; its notice that dg supersedes it is not for make run.
    ignore = "ignore:Function `job_execute_command` is superseded"
    quiet = {**os.environ, "PYTHONWARNINGS": ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), ignore]))}
    code = subprocess.call(cmd, env=quiet)
    if code:
        print(f"\nthe run failed (exit {code}); its logs are above and in the UI (make dev)", file=sys.stderr)
        return code
    print(f"\ndone. Data is under {data_dir()}:")
    for what, where in targets():
        print(f"  {what:<14}{where}")
    print("Open the UI with `make dev` (http://127.0.0.1:3000); this run is in its Runs history.")
    return 0


def dev(dg_args: list[str]) -> int:
    """`dg dev` (what `make dev` runs), stopped by SIGTERM as by Ctrl-C: SIGINT to the whole process group at once.
    On its own, dg dev turns a SIGTERM into shutdown messages to its webserver and daemon, which then stop their
    code servers and wait for in-flight runs that got no signal: over 30 s on a loaded machine. Make passes a
    SIGTERM on to this process only, not to the group."""
    dg = os.path.join(os.path.dirname(sys.executable), "dg")
    # A shell starts a background job (`make dev &`) with SIGINT ignored, which exec keeps: dg dev takes the default
    # back, or the SIGINT below would stop nothing.
    child = subprocess.Popen([dg, "dev", *dg_args], preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # After the start, so the child does not inherit it: Ctrl-C reaches the whole group; this process only waits
    # for dg dev to finish and exits with its code.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: os.killpg(0, signal.SIGINT))
    code = child.wait()
    return 128 - code if code < 0 else code  # killed by a signal: the shell's convention (130 for SIGINT)


def targets() -> list[tuple[str, str]]:
    """Where each target's data went (URLs without passwords), as the resources resolve them."""
    from synth_platform.resources import data_dir, database_url
    from synth_platform.sinks.database import redact

    env = os.environ.get
    tinybird = env("TINYBIRD_API_URL", "https://api.tinybird.co") if env("TINYBIRD_TOKEN") else None
    return [
        ("SQL database", redact(database_url())),
        ("bucket files", env("SYNTH_BUCKET_URL") or str(data_dir() / "bucket")),
        ("Delta tables", env("SYNTH_DELTA_ROOT") or str(data_dir() / "delta")),
        ("Tinybird", tinybird or f"outbox {data_dir() / 'tinybird_outbox'} (no TINYBIRD_TOKEN)"),
    ]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["dev"]:  # every other argument is dg dev's (argparse would take -h for help)
        return dev(argv[1:])
    from synth_platform.fileutils import commands as file_commands

    parser = argparse.ArgumentParser(prog="python -m synth_platform", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="backfill the demo window of every asset (what `make run` does)").set_defaults(
        func=demo
    )
    commands.add_parser("dev", help="`dg dev ARGS...` that stops on SIGTERM as on Ctrl-C (what `make dev` runs)")
    file_commands.register(commands)
    args = parser.parse_args(argv)
    return args.func(args)
