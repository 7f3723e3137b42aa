"""The production deployment files: deploy/dagster-k8s.yaml and deploy/helm/values.yaml load under the installed
dagster-k8s (the real K8sRunLauncher is built from them), agree with deploy/dagster.yaml and with each other, and
the Dockerfile passes hadolint, runs as a non-root user, and its numba warm-up still compiles the renderer."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import dagster as dg
import dockerfile
import jsonschema
import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster._core.instance.ref import InstanceRef
from dagster_k8s import K8sRunLauncher

from synth_platform.resources import PROJECT_ROOT
from synth_platform_tests.services import dagster_pg_env

DEPLOY = PROJECT_ROOT / "deploy"
HADOLINT = Path(sys.executable).with_name("hadolint")

# A hand-checked subset of the Dagster chart's values.schema.json (helm/dagster in dagster-io/dagster): the parts
# these values set, with the chart's types, enums and closed objects (additionalProperties: false).
_NAME_REFS = {
    "type": "array",
    "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
}
HELM_SCHEMA = {
    "type": "object",
    "properties": {
        "global": {"type": "object", "properties": {"postgresqlSecretName": {"type": "string"},
                                                    "serviceAccountName": {"type": "string"}}},
        "generatePostgresqlPasswordSecret": {"type": "boolean"},
        "postgresql": {
            "type": "object",
            "properties": {"enabled": {"type": "boolean"}, "postgresqlHost": {"type": "string"},
                           "postgresqlUsername": {"type": "string"}, "postgresqlDatabase": {"type": "string"},
                           "postgresqlParams": {"type": "object"},
                           "service": {"type": "object", "required": ["port"],
                                       "properties": {"port": {"type": "integer"}}}},
        },
        "dagster-user-deployments": {
            "type": "object",
            "properties": {
                "enabled": {"type": "boolean"},
                "enableSubchart": {"type": "boolean"},
                "deployments": {"type": "array", "items": {
                    "type": "object",
                    "required": ["name", "image", "port"],
                    "properties": {
                        "name": {"type": "string"},
                        "image": {"type": "object", "required": ["repository", "pullPolicy"], "properties": {
                            "repository": {"type": "string"}, "tag": {"type": ["string", "integer", "null"]},
                            "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]}}},
                        "dagsterApiGrpcArgs": {"type": "array", "items": {"type": "string"}},
                        "port": {"type": "integer"},
                        "includeConfigInLaunchedRuns": {"type": "object", "required": ["enabled"],
                                                        "properties": {"enabled": {"type": "boolean"}}},
                        "envConfigMaps": _NAME_REFS,
                        "envSecrets": _NAME_REFS,
                        "podSecurityContext": {"type": "object"},
                        "securityContext": {"type": "object"},
                        "resources": {"type": "object"},
                    },
                }},
            },
        },
        "runLauncher": {
            "type": "object", "required": ["type", "config"], "additionalProperties": False,
            "properties": {
                "type": {"enum": ["CeleryK8sRunLauncher", "K8sRunLauncher", "CustomRunLauncher"]},
                "config": {"type": "object", "properties": {"k8sRunLauncher": {
                    "type": "object", "additionalProperties": False,
                    "required": ["imagePullPolicy", "loadInclusterConfig", "envConfigMaps", "envSecrets", "envVars",
                                 "volumeMounts", "volumes"],
                    "properties": {
                        "imagePullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
                        "jobNamespace": {"type": ["string", "null"]},
                        "loadInclusterConfig": {"type": "boolean"},
                        "envConfigMaps": _NAME_REFS, "envSecrets": _NAME_REFS,
                        "envVars": {"type": "array", "items": {"type": "string"}},
                        "volumeMounts": {"type": "array"}, "volumes": {"type": "array"},
                        "runK8sConfig": {"type": ["object", "null"], "additionalProperties": False, "properties": {
                            k: {"type": ["object", "null"]} for k in (
                                "containerConfig", "podSpecConfig", "podTemplateSpecMetadata", "jobSpecConfig",
                                "jobMetadata")}},
                    },
                }}},
            },
        },
        "dagsterDaemon": {"type": "object", "properties": {
            "runCoordinator": {
                "type": "object", "required": ["enabled", "type", "config"], "additionalProperties": False,
                "properties": {
                    "enabled": {"type": "boolean"},
                    "type": {"enum": ["QueuedRunCoordinator", "CustomRunCoordinator"]},
                    "config": {"type": "object", "properties": {"queuedRunCoordinator": {
                        "type": "object", "additionalProperties": False, "properties": {
                            "maxConcurrentRuns": {"type": ["integer", "null"]},
                            "tagConcurrencyLimits": {"type": "array", "items": {
                                "type": "object", "required": ["key", "limit"], "additionalProperties": False,
                                "properties": {
                                    "key": {"type": "string"}, "limit": {"type": "integer"},
                                    "value": {"anyOf": [
                                        {"type": "string"}, {"type": "null"},
                                        {"type": "object", "required": ["applyLimitPerUniqueValue"],
                                         "additionalProperties": False,
                                         "properties": {"applyLimitPerUniqueValue": {"type": "boolean"}}}]},
                                }}},
                        }}}},
                },
            },
            "runMonitoring": {"type": "object"},
            "runRetries": {"type": "object"},
        }},
        "dagsterWebserver": {"type": "object", "properties": {"envConfigMaps": _NAME_REFS}},
        "telemetry": {"type": "object", "required": ["enabled"], "additionalProperties": False,
                      "properties": {"enabled": {"type": "boolean"}}},
    },
}  # fmt: skip


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.fixture
def helm() -> dict:
    return load(DEPLOY / "helm" / "values.yaml")


def test_k8s_instance_is_the_production_instance_plus_the_k8s_run_launcher():
    k8s, base = load(DEPLOY / "dagster-k8s.yaml"), load(DEPLOY / "dagster.yaml")
    launcher = k8s.pop("run_launcher")
    assert k8s == base
    assert (launcher["module"], launcher["class"]) == ("dagster_k8s", "K8sRunLauncher")


def test_k8s_instance_config_loads_and_builds_the_k8s_run_launcher(tmp_path, postgres_url, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((DEPLOY / "dagster-k8s.yaml").read_text())
    config, _ = dagster_instance_config(str(home))  # the instance schema, env sources included
    launcher_config = config["run_launcher"]["config"]
    processed = process_config(K8sRunLauncher.config_type(), launcher_config)
    assert processed.success, processed.errors

    # Outside a cluster the launcher is pointed at a kubeconfig instead; everything else is the file's.
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "test",
                "clusters": [{"name": "test", "cluster": {"server": "https://127.0.0.1:1"}}],
                "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
                "users": [{"name": "test", "user": {"token": "unused"}}],
            }
        )
    )
    launcher_config.update(load_incluster_config=False, kubeconfig_file=str(kubeconfig))
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    for name, value in dagster_pg_env(postgres_url).items():
        monkeypatch.setenv(name, value)
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, K8sRunLauncher)
        assert launcher.job_namespace == "synth"
        assert launcher.env_config_maps == ["synth-platform-env"]
        assert launcher.env_secrets == ["synth-platform-secrets"]
        assert launcher.instance_config_map == "dagster-instance"
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"


def test_helm_values_fit_the_charts_schema(helm):
    jsonschema.validate(helm, HELM_SCHEMA)
    bad = {**helm, "runLauncher": {**helm["runLauncher"], "type": "K8sLauncher"}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, HELM_SCHEMA)  # the subset can fail


def test_helm_run_launcher_values_are_a_valid_k8s_run_launcher_config(helm):
    """The chart's translation of runLauncher.config.k8sRunLauncher (camelCase, [{name}]) into dagster.yaml."""
    values = helm["runLauncher"]["config"]["k8sRunLauncher"]
    run_k8s = {"container_config": values["runK8sConfig"]["containerConfig"]}
    config = {
        "instance_config_map": "dagster-instance",
        "service_account_name": helm["global"]["serviceAccountName"],
        "postgres_password_secret": helm["global"]["postgresqlSecretName"],
        "image_pull_policy": values["imagePullPolicy"],
        "load_incluster_config": values["loadInclusterConfig"],
        "env_config_maps": [m["name"] for m in values["envConfigMaps"]],
        "env_secrets": [s["name"] for s in values["envSecrets"]],
        "env_vars": values["envVars"],
        "volume_mounts": values["volumeMounts"],
        "volumes": values["volumes"],
        "run_k8s_config": run_k8s,
    }
    processed = process_config(K8sRunLauncher.config_type(), config)
    assert processed.success, processed.errors
    k8s = load(DEPLOY / "dagster-k8s.yaml")["run_launcher"]["config"]
    for key in ("env_config_maps", "env_secrets", "run_k8s_config", "service_account_name", "postgres_password_secret"):
        assert config[key] == k8s[key], key


def test_helm_values_agree_with_the_instance_and_the_image(helm):
    instance = load(DEPLOY / "dagster.yaml")
    queued = helm["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queued["maxConcurrentRuns"] == instance["concurrency"]["runs"]["max_concurrent_runs"]
    assert queued["tagConcurrencyLimits"] == instance["concurrency"]["runs"]["tag_concurrency_limits"]
    assert helm["dagsterDaemon"]["runRetries"]["maxRetries"] == instance["run_retries"]["max_retries"]
    monitoring = helm["dagsterDaemon"]["runMonitoring"]
    assert monitoring["startTimeoutSeconds"] == instance["run_monitoring"]["start_timeout_seconds"]

    (deployment,) = helm["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "synth_platform.definitions"]
    image = image_facts()
    assert deployment["port"] == image["port"]
    assert deployment["podSecurityContext"]["runAsUser"] == image["uid"]
    assert deployment["podSecurityContext"]["runAsNonRoot"] is True


def image_facts() -> dict:
    commands = dockerfile.parse_file(str(PROJECT_ROOT / "Dockerfile"))
    by = {}
    for command in commands:
        by.setdefault(command.cmd, []).append(command)
    env = {}
    for command in by["ENV"]:
        env.update(zip(command.value[::2], command.value[1::2], strict=True))
    cmd = by["CMD"][-1].value
    return {
        "base": by["FROM"][0].value[0],
        "user": by["USER"][-1].value[0],
        "uid": int(by["USER"][-1].value[0].split(":")[0]),
        "last": commands[-1].cmd,
        "entrypoint": by["ENTRYPOINT"][-1],
        "cmd": cmd,
        "port": int(cmd[cmd.index("-p") + 1]),
        "env": env,
        "runs": [c.value[0] for c in by["RUN"]],
        "user_index": max(i for i, c in enumerate(commands) if c.cmd == "USER"),
        "run_index": max(i for i, c in enumerate(commands) if c.cmd == "RUN"),
    }


def test_dockerfile_passes_hadolint():
    result = subprocess.run(
        [str(HADOLINT), "--failure-threshold", "info", "Dockerfile"], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_slim_base_non_root_user_and_entrypoint():
    image = image_facts()
    assert image["base"].startswith("python:3.11-slim")
    assert image["uid"] > 0 and image["user_index"] > image["run_index"], "runs as a non-root user after setup"
    assert image["entrypoint"].json and image["entrypoint"].value == ("dumb-init", "--")
    assert image["cmd"][:3] == ("dagster", "code-server", "start") and image["cmd"][-2:] == (
        "-m",
        "synth_platform.definitions",
    )
    assert image["env"]["NUMBA_CACHE_DIR"] and image["env"]["SYNTH_CONFIG_DIR"].endswith("/config")


def test_dockerfile_numba_warm_up_compiles_the_renderer(tmp_path):
    """The build step that fills NUMBA_CACHE_DIR, run here: it must keep working as the code moves."""
    (warm_up,) = [part for run in image_facts()["runs"] for part in run.split("&&") if "python -c" in part]
    argv = shlex.split(warm_up)
    assert argv[:2] == ["python", "-c"]
    cache = tmp_path / "numba"
    env = {"PATH": "/usr/bin:/bin", "NUMBA_CACHE_DIR": str(cache)}
    result = subprocess.run(
        [sys.executable, "-c", argv[2]], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert list(cache.rglob("*render_rows*.nbc")), "the renderer was not compiled into NUMBA_CACHE_DIR"
