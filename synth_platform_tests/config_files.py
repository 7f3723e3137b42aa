"""Editing a copy of config/ in tests and benches."""

from pathlib import Path

import yaml

from synth_platform.resources import PROJECT_ROOT

# The local instance config that `make` copies into DAGSTER_HOME.
LOCAL_INSTANCE_YAML = PROJECT_ROOT / "deploy" / "local" / "dagster.yaml"


def edit_yaml(file: Path, **changes: object) -> None:
    """Set top-level keys of a YAML file (dotted keys reach into mappings)."""
    data = yaml.safe_load(file.read_text()) or {}
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    file.write_text(yaml.safe_dump(data, sort_keys=False))
