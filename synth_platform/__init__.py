"""Deterministic synthetic data worlds, delivered as history and live through Dagster."""

__version__ = "0.3.0"
