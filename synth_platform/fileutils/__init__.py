"""File utilities behind `python -m synth_platform csv-to-ndjson` and `split`: streaming, constant memory,
RFC 4180 CSV (quoted commas and newlines) and UTF-8 throughout."""
