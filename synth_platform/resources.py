"""Target resources, configured from the environment with embedded defaults under SYNTH_DATA_DIR, plus the
operational knobs of each target from the `targets:` section of config/world.yaml and SYNTH_<TARGET>_<KNOB>
environment variables. Every setting is checked when the definitions load: a URL with a scheme its target does not
write to, or a knob out of range, fails there, before anything is written."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
import orjson
import pydantic

from synth_platform.sinks.collector import CollectorResource
from synth_platform.sinks.database import DatabaseResource
from synth_platform.sinks.delta import DeltaResource
from synth_platform.sinks.files import BucketResource
from synth_platform.sinks.mqtt import MqttResource
from synth_platform.sinks.tinybird import TinybirdResource
from synth_platform.specs.loader import Spec, SpecError, parse
from synth_platform.specs.world import TargetsSpec

PROJECT_ROOT = Path(__file__).resolve().parents[1]

LOCAL_FOLDER = ""  # a value without a scheme: a path on this machine
# The schemes each URL-like setting accepts: those its target writes to. Adding one is one line here.
URL_SCHEMES: dict[str, tuple[str, ...]] = {
    "SYNTH_BUCKET_URL": (LOCAL_FOLDER, "gs", "s3"),
    "SYNTH_DELTA_ROOT": (LOCAL_FOLDER, "gs", "s3"),
    "SYNTH_DATABASE_URL": ("sqlite", "postgresql+psycopg", "mysql+pymysql", "mariadb+pymysql"),
    "TINYBIRD_API_URL": ("https", "http"),  # http to a loopback host only (a token must not cross a network)
    "SYNTH_MQTT_URL": ("mqtt", "mqtts"),
    "SYNTH_COLLECTOR_URL": ("https", "http"),  # http to a loopback host only, as for Tinybird
}
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

# Knobs settable from `targets:` and the environment, per resource; their types, bounds and descriptions are the
# resource's own fields.
KNOBS: dict[str, tuple[type[dg.ConfigurableResource], tuple[str, ...]]] = {
    "bucket": (
        BucketResource,
        ("staging_dir", "staging_mb", "upload_workers", "part_mb", "attempts", "retry_backoff_seconds"),
    ),
    "delta": (DeltaResource, ("storage_options",)),
    "database": (DatabaseResource, ("connect_attempts", "retry_backoff_seconds", "pool_size")),
    "tinybird": (
        TinybirdResource,
        (
            "max_batch_bytes",
            "max_batch_rows",
            "max_in_flight",
            "max_attempts",
            "backoff_seconds",
            "max_wait_seconds",
            "timeout_seconds",
        ),
    ),  # fmt: skip
}


def data_dir() -> Path:
    """Root of the embedded targets (SQLite file, local bucket, Delta tables, Tinybird outbox)."""
    return Path(os.environ.get("SYNTH_DATA_DIR") or PROJECT_ROOT / ".data").resolve()


def env_or(name: str, default: str) -> str | dg.EnvVar:
    """An EnvVar when the variable is set (so the UI shows its source, never its value), else the default."""
    return dg.EnvVar(name) if os.environ.get(name) else default


def database_url() -> str:
    return os.environ.get("SYNTH_DATABASE_URL") or f"sqlite:///{data_dir() / 'synth.db'}"


def redact_url(value: str) -> str:
    """The value with any password and query string replaced by ***."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return "***"
    if parts.password is None and not parts.query:
        return value
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc, query="***" if parts.query else "").geturl()


def _describe(schemes: tuple[str, ...]) -> str:
    return ", ".join("a local folder" if s == LOCAL_FOLDER else f"{s}://" for s in schemes)


def check_url(variable: str, value: str) -> None:
    """Fail unless `value` has a scheme `variable` accepts (URL_SCHEMES), naming the variable, the redacted value
    and the accepted schemes."""
    match = _SCHEME.match(value)
    scheme = match.group(1).lower() if match else LOCAL_FOLDER
    accepted = URL_SCHEMES[variable]
    reason = None
    if scheme not in accepted:
        reason = f"scheme {scheme}:// is not one this target writes to" if scheme else "not a URL"
    elif scheme != LOCAL_FOLDER and not value[len(scheme) + 1 :].startswith("//"):
        reason = f"{scheme}: must be followed by //"
    elif scheme in ("gs", "s3", "http", "https", "mqtt", "mqtts") and not urlsplit(value).hostname:
        reason = "no bucket or host after the scheme"
    elif scheme == "http" and urlsplit(value).hostname not in _LOOPBACK:
        reason = "http:// is accepted for loopback hosts only (the token would cross the network in clear)"
    if reason:
        raise SpecError("environment", [(variable, f"{redact_url(value)}: {reason}; accepted: {_describe(accepted)}")])


def check_urls() -> None:
    for variable in URL_SCHEMES:
        value = os.environ.get(variable)
        if value:
            check_url(variable, value)


def knobs(targets: TargetsSpec, file: Path | str) -> dict[str, dict[str, Any]]:
    """The knobs of each target: `targets:` of world.yaml, overridden by SYNTH_<TARGET>_<KNOB> variables; each
    validated with the resource field's own type and bounds."""
    out = {}
    for section, (resource, names) in KNOBS.items():
        fields = {n: (resource.model_fields[n].annotation, resource.model_fields[n]) for n in names}
        model = pydantic.create_model(f"{section.title()}Knobs", __base__=Spec, **fields)  # type: ignore[call-overload]
        values = parse(model, getattr(targets, section), file, f"targets.{section}").model_dump(exclude_unset=True)
        for name in names:
            variable = f"SYNTH_{section}_{name}".upper()
            raw = os.environ.get(variable)
            if raw is None or raw == "":
                continue
            try:
                value: Any = orjson.loads(raw) if resource.model_fields[name].annotation is not str else raw
            except orjson.JSONDecodeError:
                raise SpecError("environment", [(variable, "not valid JSON")]) from None
            values[name] = getattr(parse(model, {name: value}, "environment", variable), name)
        out[section] = values
    return out


def build_resources(targets: TargetsSpec | None = None, file: Path | str = "config/world.yaml") -> dict[str, Any]:
    check_urls()
    settings = knobs(targets or TargetsSpec(), file)
    return {
        "database": DatabaseResource(url=env_or("SYNTH_DATABASE_URL", database_url()), **settings["database"]),
        "bucket": BucketResource(url=env_or("SYNTH_BUCKET_URL", str(data_dir() / "bucket")), **settings["bucket"]),
        "delta": DeltaResource(
            root=env_or("SYNTH_DELTA_ROOT", str(data_dir() / "delta")),
            endpoint_url=env_or("AWS_ENDPOINT_URL", ""),
            region=env_or("AWS_REGION", ""),
            **settings["delta"],
        ),
        "tinybird": TinybirdResource(
            api_url=env_or("TINYBIRD_API_URL", "https://api.tinybird.co"),
            token=env_or("TINYBIRD_TOKEN", ""),
            outbox_dir=str(data_dir() / "tinybird_outbox"),
            **settings["tinybird"],
        ),
        "mqtt": MqttResource(
            url=env_or("SYNTH_MQTT_URL", "mqtt://127.0.0.1:1883"),
            username=env_or("SYNTH_MQTT_USERNAME", ""),
            password=env_or("SYNTH_MQTT_PASSWORD", ""),
            ca_certs=env_or("SYNTH_MQTT_CA_CERTS", ""),
        ),
        "collector": CollectorResource(
            url=env_or("SYNTH_COLLECTOR_URL", "http://127.0.0.1:8080/readings"),
            token=env_or("SYNTH_COLLECTOR_TOKEN", ""),
        ),
    }
