"""The suite's fixtures live in plain modules, so benches and helpers import what they need without this file."""

pytest_plugins = [
    "synth_platform_tests.fixtures",
    "synth_platform_tests.tinybird_server",
    "synth_platform_tests.gcs_emulator",
    "synth_platform_tests.s3_server",
]
