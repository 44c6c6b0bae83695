"""Every file in deploy/ checked by what can check it here: hadolint for the Dockerfile, the
Compose spec schema for compose.yaml, `systemd-analyze verify` for the units, the Kubernetes
API schemas for the manifests, plus the project's own rules (non-root, health checks, secrets
that exist, probes on /healthz). No container engine runs here, so nothing is started."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
SYSTEMD = DEPLOY / "systemd"
INSTALLED_MONITOR = "/opt/optout-monitor/.venv/bin/monitor"


def tool(name: str) -> str:
    """A checker installed by the test extras beside this Python, else on PATH."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed (pip install -e '.[test]')")
    return found


def run(*command: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=120)


# -- Dockerfile ---------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (word.upper(), rest.strip())
        for word, _, rest in (line.partition(" ") for line in lines if line and line[0] != "#")
    ]


def test_dockerfile_passes_hadolint(tmp_path: Path) -> None:
    linted = run(tool("hadolint"), "--no-color", "deploy/Dockerfile")
    assert linted.returncode == 0, linted.stdout + linted.stderr
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM debian\nRUN apt-get install chromium\n")
    assert run(tool("hadolint"), "--no-color", str(careless)).returncode != 0


def test_image_is_multi_stage_non_root_with_chromium_and_a_healthcheck() -> None:
    steps = dockerfile_instructions()
    stages = [rest for word, rest in steps if word == "FROM"]
    assert len(stages) >= 2 and " AS build" in stages[0]
    final = steps[max(i for i, (word, _) in enumerate(steps) if word == "FROM") :]
    runtime: dict[str, str] = {}
    for word, rest in final:
        runtime[word] = f"{runtime.get(word, '')} {rest}".strip()
    assert "COPY --from=build /opt/monitor" in f"COPY {runtime['COPY']}"
    assert "chromium" in runtime["RUN"]
    users = [rest for word, rest in final if word == "USER"]
    assert users and not users[-1].startswith(("0:", "root"))
    assert "/healthz" in (DEPLOY / "Dockerfile").read_text()
    assert any(word == "HEALTHCHECK" and "CMD" in rest for word, rest in final)
    assert '"/app/snapshots"' in runtime["VOLUME"]
    assert runtime["ENTRYPOINT"].endswith('"monitor"]')
    environment = runtime["ENV"]
    for name in ("MONITOR_TARGETS", "MONITOR_DB", "MONITOR_BROWSER", "MONITOR_HEALTH"):
        assert f"{name}=" in environment


def test_every_file_the_image_copies_is_in_the_build_context() -> None:
    """The Dockerfile's own .dockerignore keeps the context small but must keep these."""
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for word, rest in dockerfile_instructions():
        if word != "COPY" or rest.startswith("--from"):
            continue
        *sources, _destination = rest.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source.rstrip("/") in kept, f"{source} is left out of the build context"


# -- Compose -------------------------------------------------------------------------------

VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:-|:\?)(?P<arg>[^}]*))?\}")


def interpolate(value: Any, environment: dict[str, str]) -> Any:
    """What Compose does to `${VAR}`, `${VAR:-default}` and `${VAR:?message}`."""
    if isinstance(value, dict):
        return {key: interpolate(item, environment) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, environment) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if environment.get(name):
            return environment[name]
        if op == ":?":
            raise KeyError(f"{name}: {arg}")
        return arg if op == ":-" else ""

    return VARIABLE.sub(substitute, value)


def example_environment() -> dict[str, str]:
    lines = (DEPLOY / "env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def compose(environment: dict[str, str] | None = None) -> dict[str, Any]:
    raw = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return interpolate(raw, example_environment() if environment is None else environment)


def test_compose_file_matches_the_compose_spec(tmp_path: Path) -> None:
    checked = run(
        tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", "deploy/compose.yaml"
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    resolved = tmp_path / "compose.yaml"
    resolved.write_text(yaml.safe_dump(compose()))
    checked = run(
        tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(resolved)
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("services:\n  run:\n    image: x\n    restart: sometimes\n    bogus: 1\n")
    rejected = run(tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(broken))
    assert rejected.returncode != 0


def test_compose_refuses_to_start_without_a_database_password() -> None:
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        compose({})


def test_compose_services_are_wired_together() -> None:
    spec = compose()
    services = spec["services"]
    assert {"postgres", "run", "serve", "check", "browser"} <= services.keys()
    monitors = {name: services[name] for name in ("run", "serve", "check")}
    build = monitors["run"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    for name, service in monitors.items():
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy", name
        assert "@postgres:5432/" in service["environment"]["MONITOR_DB"], name
        assert service["read_only"] and service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        for volume in service["volumes"]:
            source = volume.split(":")[0]
            assert source in spec["volumes"] or (DEPLOY / source).is_dir(), volume
        for secret in service.get("secrets", []):
            assert secret in spec["secrets"], secret
            assert service["environment"]["MONITOR_NOTIFY"] == f"/run/secrets/{secret}"
    for name in ("postgres", "run", "serve"):
        assert services[name]["restart"] == "unless-stopped", name
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    assert "/healthz" in " ".join(services["run"]["healthcheck"]["test"])
    assert ":8080/healthz" in " ".join(services["serve"]["healthcheck"]["test"])
    assert services["run"]["command"] == ["run"]
    assert services["serve"]["command"][0] == "serve"
    assert services["check"]["command"] == ["check-now"]
    assert services["check"]["profiles"] and services["browser"]["profiles"]
    assert all(port.startswith("127.0.0.1:") for port in services["serve"]["ports"])
    assert not any(service.get("privileged") for service in services.values())
    assert "POSTGRES_PASSWORD" in services["postgres"]["environment"]


def test_compose_secret_example_is_an_apprise_config_and_real_ones_stay_out_of_git() -> None:
    example = yaml.safe_load((DEPLOY / "secrets" / "apprise.example.yaml").read_text())
    assert example["version"] == 1
    assert any(next(iter(url)).startswith("slack://") for url in example["urls"])
    assert compose()["secrets"]["apprise"]["file"] == "./secrets/apprise.yaml"
    ignored = run("git", "check-ignore", "-q", "deploy/secrets/apprise.yaml")
    assert ignored.returncode == 0
    assert run("git", "check-ignore", "-q", "deploy/.env").returncode == 0


# -- systemd -------------------------------------------------------------------------------

UNITS = sorted(p.name for p in [*SYSTEMD.glob("*.service"), *SYSTEMD.glob("*.timer")])


def verify_units(directory: Path, names: list[str]) -> subprocess.CompletedProcess[str]:
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.fail("systemd-analyze is needed to verify deploy/systemd (apt-get install systemd)")
    return run(analyze, "verify", "--man=no", *names, cwd=directory)


def installed_copy(tmp_path: Path) -> Path:
    """The units as installed, their ExecStart pointed at this checkout's `monitor`."""
    here = tmp_path / "units"
    here.mkdir()
    monitor = Path(sys.executable).with_name("monitor")
    assert monitor.exists()
    for name in UNITS:
        text = (SYSTEMD / name).read_text()
        (here / name).write_text(text.replace(INSTALLED_MONITOR, str(monitor)))
    return here


def test_systemd_units_verify_cleanly(tmp_path: Path) -> None:
    assert UNITS == [
        "monitor-check.service",
        "monitor-check.timer",
        "monitor-run.service",
        "monitor-serve.service",
    ]
    units = installed_copy(tmp_path)
    verified = verify_units(units, UNITS)
    assert verified.returncode == 0 and not verified.stderr.strip(), verified.stderr

    typo = units / "monitor-run.service"
    typo.write_text(typo.read_text().replace("ProtectSystem=", "ProtectSytem="))
    complaint = verify_units(units, ["monitor-run.service"])
    assert "ProtectSytem" in complaint.stderr


def unit_settings(name: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in (SYSTEMD / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


@pytest.mark.parametrize("name", ["monitor-run.service", "monitor-serve.service"])
def test_long_running_units_restart_on_failure(name: str) -> None:
    unit = unit_settings(name)
    assert unit["Restart"] == ["on-failure"]
    assert unit["ExecStart"][0].startswith(INSTALLED_MONITOR)


@pytest.mark.parametrize("name", [u for u in UNITS if u.endswith(".service")])
def test_every_service_runs_as_its_own_user_with_hardening(name: str) -> None:
    unit = unit_settings(name)
    assert unit["User"] == ["optout-monitor"]
    sysusers = (SYSTEMD / "optout-monitor.sysusers").read_text()
    assert re.search(r"^u optout-monitor ", sysusers, re.MULTILINE)
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert unit.get(key) == [value], f"{name}: {key}"
    assert "MONITOR_NOTIFY" not in "".join(unit.get("EnvironmentFile", []))
    if "LoadCredential" in unit:
        assert "MONITOR_NOTIFY=%d/apprise" in unit["Environment"]


def test_the_timer_starts_the_check_service() -> None:
    timer = unit_settings("monitor-check.timer")
    assert timer["Unit"] == ["monitor-check.service"]
    assert timer["Persistent"] == ["yes"]
    check = unit_settings("monitor-check.service")
    assert check["Type"] == ["oneshot"]
    assert check["ExecStart"] == [f"{INSTALLED_MONITOR} check-now"]


# -- Kubernetes ----------------------------------------------------------------------------


def manifests() -> dict[str, list[dict[str, Any]]]:
    return {
        path.name: [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
        for path in sorted(KUBERNETES.glob("*.yaml"))
        if path.name != "kustomization.yaml"
    }


def objects(kind: str) -> dict[str, dict[str, Any]]:
    return {
        doc["metadata"]["name"]: doc
        for docs in manifests().values()
        for doc in docs
        if doc["kind"] == kind
    }


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    template = workload["spec"].get("jobTemplate", workload)["spec"]["template"]
    return template["spec"]


def test_manifests_match_the_kubernetes_api_schemas(tmp_path: Path) -> None:
    files = [str(KUBERNETES / name) for name in manifests()]
    validated = run(tool("kubernetes-validate"), "--strict", "--quiet", *files)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    typo = tmp_path / "typo.yaml"
    typo.write_text((KUBERNETES / "daemon.yaml").read_text().replace("replicas:", "replica:", 1))
    assert run(tool("kubernetes-validate"), "--strict", "--quiet", str(typo)).returncode != 0


def test_kustomization_lists_every_manifest_and_renames_the_image() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(manifests())
    image = kustomization["images"][0]["name"]
    for workload in [*objects("Deployment").values(), *objects("CronJob").values()]:
        assert [c["image"] for c in pod_spec(workload)["containers"]] == [image]


def test_daemon_replicas_web_service_and_cronjob() -> None:
    deployments, cronjob = objects("Deployment"), objects("CronJob")["monitor-check"]
    assert deployments["monitor-run"]["spec"]["replicas"] >= 2
    assert pod_spec(deployments["monitor-run"])["containers"][0]["args"] == ["run"]
    assert pod_spec(deployments["monitor-serve"])["containers"][0]["args"][0] == "serve"
    assert pod_spec(cronjob)["containers"][0]["args"] == ["check-now"]
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    service = objects("Service")["monitor-serve"]
    web_pod = deployments["monitor-serve"]["spec"]["template"]
    assert service["spec"]["selector"].items() <= web_pod["metadata"]["labels"].items()
    ports = {p["name"] for c in web_pod["spec"]["containers"] for p in c["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports


@pytest.mark.parametrize("name", ["monitor-run", "monitor-serve"])
def test_long_running_pods_are_probed_on_healthz(name: str) -> None:
    container = pod_spec(objects("Deployment")[name])["containers"][0]
    ports = {p["name"] for p in container["ports"]}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"
        assert container[probe]["httpGet"]["port"] in ports


def test_every_pod_is_non_root_read_only_and_sized() -> None:
    workloads = [
        *objects("Deployment").values(),
        *objects("CronJob").values(),
        *objects("StatefulSet").values(),
    ]
    secret = objects("Secret")["monitor-secrets"]["stringData"]
    config_maps = set(objects("ConfigMap")) | {"monitor-targets"}  # made from targets/
    for workload in workloads:
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        mounts_needed = set()
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            resources = container["resources"]
            assert resources["requests"]["memory"] and resources["limits"]["memory"]
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == "monitor-secrets" and ref["key"] in secret
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in config_maps
            mounts_needed |= {m["name"] for m in container.get("volumeMounts", [])}
            if workload["kind"] != "StatefulSet":
                assert context["readOnlyRootFilesystem"] is True
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        claims = {c["metadata"]["name"] for c in workload["spec"].get("volumeClaimTemplates", [])}
        assert mounts_needed <= volumes.keys() | claims
        for volume in volumes.values():
            if "secret" in volume:
                assert all(item["key"] in secret for item in volume["secret"]["items"])
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps


def test_destinations_reach_the_monitor_as_a_mounted_apprise_file() -> None:
    config = objects("ConfigMap")["monitor-config"]["data"]
    secret = objects("Secret")["monitor-secrets"]["stringData"]
    assert config["MONITOR_NOTIFY"] == "/etc/monitor/apprise.yaml"
    assert yaml.safe_load(secret["apprise.yaml"])["version"] == 1
    assert not any("slack://" in value for value in config.values())
    for workload in (objects("Deployment")["monitor-run"], objects("CronJob")["monitor-check"]):
        mounts = pod_spec(workload)["containers"][0]["volumeMounts"]
        assert {"name": "destinations", "mountPath": "/etc/monitor", "readOnly": True} in mounts


def test_docs_name_every_deploy_file() -> None:
    guide = (ROOT / "docs" / "deploy.md").read_text()
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file() and path.name not in (".gitignore",):
            assert path.relative_to(ROOT).as_posix() in guide or path.name in guide, path
