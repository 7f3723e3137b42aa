"""Thin Dagster wiring per domain: assets, checks, jobs and schedules built from the specs."""
