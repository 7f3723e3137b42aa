"""`make bench [BENCH=name]`: run every benchmark module in bench/ (or the named ones) and print ratios."""

import importlib
import pkgutil
import sys
import time

import bench


def main(selected: list[str]) -> int:
    names = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_"))
    unknown = set(selected) - set(names)
    if unknown:
        print(f"unknown benchmark(s) {sorted(unknown)}; available: {names}", file=sys.stderr)
        return 2
    failed = []
    for name in selected or names:
        print(f"\n=== bench {name} ===", flush=True)
        started = time.perf_counter()
        if importlib.import_module(f"bench.{name}").main() is False:
            failed.append(name)
        print(f"--- {name}: {time.perf_counter() - started:.1f}s", flush=True)
    if failed:
        print(f"\nbelow target: {', '.join(failed)}")
    return 1 if failed else 0


sys.exit(main(sys.argv[1:]))
