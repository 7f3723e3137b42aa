"""End to end under the real `dagster dev` (webserver + daemon) on a temp DAGSTER_HOME: the live sensors' runs append
each minute's rows to SQLite (power_usage) and the local bucket (meter_readings), a two-day partition backfill
launched over GraphQL as the UI does completes with exactly the world's rows, and every process is gone within 30 s
of Ctrl-C or of a SIGTERM to what `make dev` runs."""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

from synth_platform.assets.common import LIVE_WINDOW_END_TAG, LIVE_WINDOW_START_TAG
from synth_platform.domains import load_platform
from synth_platform.resources import PROJECT_ROOT
from synth_platform.sinks.database import DatabaseResource
from synth_platform.sinks.files import BucketResource, window_prefix
from synth_platform.streams.meters import READINGS
from synth_platform.world.meters import expected_rows as meter_rows
from synth_platform.world.power_usage import expected_rows as power_rows
from synth_platform.world.windows import Window
from synth_platform_tests.config_files import LOCAL_INSTANCE_YAML, edit_yaml
from synth_platform_tests.live_helpers import power_platform
from synth_platform_tests.services import free_port

pytestmark = pytest.mark.timeout(480)
STREAMS = ("power_usage", READINGS)

LAUNCH_BACKFILL = """
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on UnauthorizedError { message }
  }
}"""
BACKFILL_STATUS = """
query BackfillStatus($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ... on PartitionBackfill { id status }
    ... on PythonError { message }
  }
}"""
FRESHNESS = """
query Freshness($path: [String!]!) {
  assetNodeOrError(assetKey: {path: $path}) { ... on AssetNode { freshnessStatusInfo { freshnessStatus } } }
}"""
LIVE_RUNS = """
query LiveRuns($stream: String!) {
  runsOrError(filter: {tags: [{key: "synth/live_stream", value: $stream}]}) {
    ... on Runs { results { runId status tags { key value } } }
  }
}"""


class Dev:
    """What `make dev` runs (`dg dev` behind the wrapper that turns SIGTERM into Ctrl-C) in its own process group,
    talking GraphQL to its webserver."""

    def __init__(self, env: dict[str, str], log: Path, background: bool = False):
        """`background`: started as a shell starts `make dev &`, with SIGINT ignored (which exec keeps)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/graphql"
        self.log = log
        cmd = [sys.executable, "-m", "synth_platform", "dev", "-h", "127.0.0.1", "-p", str(self.port)]
        self.proc = subprocess.Popen(
            cmd,
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if background else None,
        )

    def graphql(self, query: str, **variables: object) -> dict:
        response = httpx.post(self.url, json={"query": query, "variables": variables}, timeout=30)
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def wait_until_up(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"dagster dev exited:\n{self.tail()}"
            try:
                if self.graphql("{ version }")["version"]:
                    return
            except (httpx.HTTPError, AssertionError):
                pass
            time.sleep(1)
        raise AssertionError(f"webserver not up after {timeout}s:\n{self.tail()}")

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def group(self) -> list[str]:
        """The live processes of its process group (pid and command line)."""
        found = []
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                state, _, group = (proc / "stat").read_text().rsplit(")", 1)[1].split()[:3]
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except (FileNotFoundError, ProcessLookupError):
                continue  # gone meanwhile
            if int(group) == self.proc.pid and state != "Z":
                found.append(f"{proc.name} {command[:160]}")
        return found

    def stop(self, sig: signal.Signals) -> int:
        """Ctrl-C (SIGINT to the whole group, as a terminal sends it) or SIGTERM to the top process alone (as
        `kill` or make passes it on); returns the exit code once every process of the group has gone, which must
        be within 30 s."""
        started = time.monotonic()
        if sig == signal.SIGINT:
            os.killpg(self.proc.pid, sig)
        else:
            self.proc.send_signal(sig)
        code = None
        while time.monotonic() - started < 30:
            code = self.proc.poll() if code is None else code
            if code is not None and not self.group():
                print(f"stopped by {sig.name} in {time.monotonic() - started:.1f}s")
                return code
            time.sleep(0.25)
        left = self.group()
        os.killpg(self.proc.pid, signal.SIGKILL)
        raise AssertionError(f"30 s after {sig.name}, still running:\n" + "\n".join(left) + f"\n{self.tail()}")


def wait_for(what: str, predicate, timeout: float, dev: Dev, every: float = 2.0):
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            print(f"{what}: {time.monotonic() - started:.0f}s")
            return value
        assert dev.proc.poll() is None, f"dagster dev exited:\n{dev.tail()}"
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{dev.tail()}")


def window_of(run: dict) -> Window:
    tags = {t["key"]: t["value"] for t in run["tags"]}
    return Window(
        datetime.fromisoformat(tags[LIVE_WINDOW_START_TAG]), datetime.fromisoformat(tags[LIVE_WINDOW_END_TAG])
    )


class Targets:
    """Where each stream's rows land: power_usage in SQLite, meter_readings in the local bucket."""

    def __init__(self, platform, data_dir: Path):
        self.power, self.meters, self.seed = platform.get("power"), platform.get("meters"), platform.world.seed
        self.db = DatabaseResource(url=f"sqlite:///{data_dir / 'synth.db'}")
        self.bucket = BucketResource(url=str(data_dir / "bucket"))

    def delivered(self, stream: str, w: Window) -> bool:
        """The window holds exactly the world's rows (and some)."""
        if stream == "power_usage":
            sql = "SELECT COUNT(*) FROM power_usage WHERE timestamp >= :start AND timestamp < :end"
            try:
                rows = int(self.db.scalar(sql, {"start": w.start, "end": w.end}))
            except sa.exc.OperationalError:  # the table appears with the first run
                return False
            return rows == power_rows(self.power, self.seed, w) > 0
        manifest = self.bucket.manifest(window_prefix(READINGS, w))
        return manifest is not None and manifest["rows"] == meter_rows(self.meters, self.seed, w) > 0


def dev_env(tmp_path: Path, config_dir: Path, data_dir: Path) -> dict[str, str]:
    """A temp DAGSTER_HOME with the local instance config, the test's config/ and data folder."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(LOCAL_INSTANCE_YAML, home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "SYNTH_CONFIG_DIR": str(config_dir),
           "SYNTH_DATA_DIR": str(data_dir), "VIRTUAL_ENV": str(Path(sys.executable).parents[1])}  # fmt: skip
    for name in ("SYNTH_DATABASE_URL", "SYNTH_BUCKET_URL"):
        env.pop(name, None)
    return env


def test_ctrl_c_stops_dev_with_a_live_run_going(tmp_path, config_dir, _data_dir):
    """The SIGTERM case ends the test below; this is Ctrl-C, as soon as the first live run is on its way."""
    power_platform(config_dir, interval_minutes=1, devices=20, initial_cursor=2, min_interval_seconds=5)
    dev = Dev(dev_env(tmp_path, config_dir, _data_dir), tmp_path / "dagster_dev.log")
    try:
        dev.wait_until_up(timeout=120)
        wait_for("the first live run", lambda: dev.graphql(LIVE_RUNS, stream="power_usage")["runsOrError"]["results"],
                 120, dev, every=0.5)  # fmt: skip
    finally:
        code = dev.stop(signal.SIGINT)
    assert code in (0, 128 + signal.SIGINT), dev.tail()


def test_live_runs_and_a_ui_backfill_under_dagster_dev(tmp_path, config_dir, _data_dir):
    edit_yaml(config_dir / "meters.yaml", **{"fleet.count": 20, "live_slice_minutes": 1})
    platform = power_platform(config_dir, interval_minutes=1, devices=20, initial_cursor=2, min_interval_seconds=5)
    edit_yaml(config_dir / "world.yaml", domains=["power", "meters"])
    platform = load_platform(config_dir)
    targets = Targets(platform, _data_dir)
    started = datetime.now(UTC)

    # a background job, stopped the way one is (SIGTERM)
    dev = Dev(dev_env(tmp_path, config_dir, _data_dir), tmp_path / "dagster_dev.log", background=True)
    try:
        dev.wait_until_up(timeout=120)

        def delivered(at_least: int) -> dict[str, list[Window]] | None:
            """Each stream's live windows whose rows have landed, once every stream has `at_least` of them;
            asserts that no window was requested twice."""
            found = {}
            for stream in STREAMS:
                batches = [window_of(r) for r in dev.graphql(LIVE_RUNS, stream=stream)["runsOrError"]["results"]]
                windows = sorted(w for b in batches for w in b.split(60))  # a run writes a batch of minutes
                assert len(windows) == len(set(windows)), f"{stream}: a window was requested twice: {windows}"
                found[stream] = sorted(w for b in batches if targets.delivered(stream, b) for w in b.split(60))
            return found if all(len(ws) >= at_least for ws in found.values()) else None

        # the sensors start RUNNING by default: their first tick requests the last two closed minutes
        first = wait_for("two live windows of each stream", lambda: delivered(2), 150, dev)

        # two past days over GraphQL, exactly as the UI's partition backfill dialog launches them (with the streams'
        # checks; their upstream tables exist since the first live runs)
        days = [(started - timedelta(days=d)).strftime("%Y-%m-%d") for d in (3, 2)]
        launched = dev.graphql(
            LAUNCH_BACKFILL,
            backfillParams={
                "assetSelection": [{"path": [stream]} for stream in STREAMS],
                "partitionNames": days,
                "fromFailure": False,
                "tags": [],
            },
        )["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        backfill_id = launched["backfillId"]

        def backfill_done() -> str | None:
            status = dev.graphql(BACKFILL_STATUS, backfillId=backfill_id)["partitionBackfillOrError"]["status"]
            return status if status not in ("REQUESTED", "CANCELING", "FAILING") else None

        assert wait_for("the backfill", backfill_done, 300, dev) in ("COMPLETED", "COMPLETED_SUCCESS")
        for day in days:
            for stream in STREAMS:
                assert targets.delivered(stream, Window.for_day(day)), f"{stream} {day}"

        browse(dev, days[0], targets, tmp_path)

        # the daemon's freshness loop judged each live stream (what the UI's freshness badge shows): fresh
        def fresh() -> bool:
            states = [dev.graphql(FRESHNESS, path=[s])["assetNodeOrError"]["freshnessStatusInfo"] for s in STREAMS]
            return all(state and state["freshnessStatus"] == "HEALTHY" for state in states)

        wait_for("every stream judged fresh", fresh, 90, dev)

        # the streams keep appending: a third window, requested by a later tick, arrives by itself
        later = wait_for("a window from a later tick", lambda: delivered(3), 150, dev)
        for stream, windows in later.items():
            assert windows[-1].end > first[stream][-1].end
            assert all(a.end <= b.start for a, b in zip(windows, windows[1:], strict=False))
    finally:
        code = dev.stop(signal.SIGTERM)  # with live runs going on
    assert code in (0, 128 + signal.SIGINT), dev.tail()
    raised = [line for line in dev.log.read_text(errors="replace").splitlines() if re.search(r"\w+Warning\b", line)]
    assert not raised, "dg dev logged warnings:\n" + "\n".join(raised)


def browse(dev: Dev, day: str, targets: Targets, tmp_path: Path) -> None:
    """Headless Chromium (Debian's package, driven by Playwright) on power_usage's asset page: a backfilled day
    shows its own row count, the overview lists the columns, the Checks tab shows evaluated checks."""
    chromium = shutil.which("chromium")
    assert chromium, "the browser test needs Debian's chromium (.ci/run installs it)"
    rows = power_rows(targets.power, targets.seed, Window.for_day(day))
    base = dev.url.removesuffix("/graphql")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})

            def show(path: str, text: str, shot: str, until=lambda body: True) -> str:
                """The page's text once `text` is rendered and `until` holds (reloading for up to 90 s)."""
                page.goto(base + path)
                deadline = time.monotonic() + 90
                while True:
                    page.get_by_text(text).first.wait_for(timeout=60_000)
                    body = page.inner_text("body")
                    if until(body) or time.monotonic() > deadline:
                        break
                    page.wait_for_timeout(3000)
                    page.reload()
                with contextlib.suppress(PlaywrightTimeout):  # the community sign-up dialog of a fresh instance
                    page.get_by_role("button", name="Skip").click(timeout=5_000)
                page.screenshot(path=tmp_path / shot, full_page=True)
                return body

            partition = show(f"/assets/power_usage?view=partitions&partition={day}", "dagster/row_count", "rows.png")
            assert f"{rows:,}" in partition or str(rows) in partition, partition
            overview = show("/assets/power_usage", "power_usage_kwh", "overview.png")
            assert all(name in overview for name in ("timestamp", "device_id", "power_usage_kwh"))
            assert "Row count" in overview and "Columns" in overview

            # evaluated in the step of each write; a live run in flight shows them in progress for a moment
            def evaluated(body: str) -> bool:
                names = ("row_count", "unique_keys", "known_devices")
                return all(re.search(rf"{n}\s+(?:{n}\s+)?Succeeded", body) for n in names)

            checks = show("/assets/power_usage?view=checks", "known_devices", "checks.png", until=evaluated)
            assert evaluated(checks), checks
        finally:
            browser.close()
