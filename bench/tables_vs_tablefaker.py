"""Declarative tables vs table-faker's own `to_pandas` on the same YAML, in the same run. Target: >= 100x rows/s.

The spec: customers (names, e-mails with 10% nulls, dates, ints) and orders (zipf foreign key, copy_from_fk,
amounts, choices). table-faker runs on fewer rows (it evaluates row by row, and its zipf draw is O(parents) per
row); its print_sys_stats, which sleeps a second per table to sample CPU, is switched off so only generation
counts. Ours is measured at scale (steady throughput) and, for reference, on table-faker's row counts.
"""

import contextlib
import io
import tempfile
import time
from datetime import date
from pathlib import Path

import yaml

from synth_platform.domains.tables import load_tables
from synth_platform.world.tables.rows import TableWorld

TARGET_RATIO = 100.0
OURS_ROWS = (200_000, 1_000_000)  # customers, orders
TABLEFAKER_ROWS = (3_000, 3_000)


def spec(customers: int, orders: int) -> dict:
    return {
        "version": 1,
        "config": {"locale": "en_US", "seed": 42},
        "tables": [
            {
                "table_name": "customers",
                "row_count": customers,
                "columns": [
                    {"column_name": "customer_id", "data": "row_id", "is_primary_key": True},
                    {"column_name": "first_name", "data": "fake.first_name()"},
                    {"column_name": "last_name", "data": "fake.last_name()"},
                    {"column_name": "email", "data": "fake.email()", "null_percentage": 0.1},
                    {"column_name": "signup_date",
                     "data": "fake.date_between(start_date=date(2020, 1, 1), end_date=date(2024, 12, 31))"},
                    {"column_name": "age", "data": "random.randint(18, 90)"},
                ],
            },
            {
                "table_name": "orders",
                "row_count": orders,
                "columns": [
                    {"column_name": "order_id", "data": "row_id", "is_primary_key": True},
                    {"column_name": "customer_id",
                     "data": 'foreign_key("customers", "customer_id", distribution="zipf", param=1.2)'},
                    {"column_name": "customer_email", "data": 'copy_from_fk("customers", "customer_id", "email")'},
                    {"column_name": "amount", "data": "round(random.uniform(5, 500), 2)"},
                    {"column_name": "status", "data": 'random.choice(["new", "paid", "shipped", "returned"])'},
                ],
            },
        ],
    }  # fmt: skip


def write(directory: Path, customers: int, orders: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    file = directory / "shop.yaml"
    file.write_text(yaml.safe_dump(spec(customers, orders), sort_keys=False))
    return file


def ours(file: Path) -> tuple[int, float]:
    """Load (parse + check expressions) and generate every table, as an asset run would."""
    started = time.perf_counter()
    world = TableWorld(load_tables(file.parent).catalog, 1, date(2026, 1, 1))
    rows = sum(sum(b.num_rows for b in world.batches(name)) for name in world.catalog.tables)
    return rows, time.perf_counter() - started


def tablefaker(file: Path) -> tuple[int, float]:
    from tablefaker import tablefaker as tf

    tf.TableFaker.print_sys_stats = lambda self: None  # it sleeps 1 s per table measuring CPU
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # its progress bar
        frames = tf.to_pandas(str(file))
    return sum(len(f) for f in frames.values()), time.perf_counter() - started


def main() -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tf_rows, tf_s = tablefaker(write(root / "tablefaker", *TABLEFAKER_ROWS))
        small_rows, small_s = ours(write(root / "small", *TABLEFAKER_ROWS))
        big_rows, big_s = ours(write(root / "big", *OURS_ROWS))
    tf_rate, small_rate, big_rate = tf_rows / tf_s, small_rows / small_s, big_rows / big_s
    ratio = big_rate / tf_rate
    print(f"table-faker to_pandas   {tf_rows:>9,} rows in {tf_s:6.2f}s  {tf_rate:>12,.0f} rows/s")
    print(f"synth-platform          {big_rows:>9,} rows in {big_s:6.2f}s  {big_rate:>12,.0f} rows/s")
    print(f"synth-platform on table-faker's row counts (load and Faker pools included): {small_rows:,} rows in "
          f"{small_s:.2f}s, {small_rate:,.0f} rows/s ({small_rate / tf_rate:.1f}x)")  # fmt: skip
    print(f"ratio {ratio:,.0f}x (target >= {TARGET_RATIO:.0f}x)")
    return ratio >= TARGET_RATIO
