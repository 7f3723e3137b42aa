"""Pure generators: (spec, seed, window) -> pyarrow tables. No Dagster, no I/O."""
