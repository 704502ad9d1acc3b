"""The deploy recipes hang together: they parse, their ports and addresses agree, every process
has a health check, workers get their drain time, Redis keeps an AOF, the image runs as a
user, and the autoscaler reads the metric docs/deploy.md names."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from orchestrator.api.settings import DEFAULT_PORT
from tests.deploy import _recipes as r

_WORKER_DRAIN_S = 30.0  # `memgrid worker --drain-seconds` default, unless the recipe sets it


def _flag(argv: tuple[str, ...], flag: str) -> str | None:
    for i, word in enumerate(argv):
        if word == flag:
            return argv[i + 1]
        if word.startswith(flag + "="):
            return word.split("=", 1)[1]
    return None


def _drain_s(argv: tuple[str, ...]) -> float:
    value = _flag(argv, "--drain-seconds")
    return float(value) if value else _WORKER_DRAIN_S


def _seconds(text: str | int) -> float:
    match = re.fullmatch(r"(\d+)(s|m)?", str(text))
    assert match, f"cannot read {text!r} as a duration"
    return float(match[1]) * (60 if match[2] == "m" else 1)


def test_every_manifest_parses_and_the_kustomization_lists_them_all() -> None:
    listed = set(r.kustomization()["resources"])
    on_disk = {p.name for p in r.K8S.glob("*.yaml")} - {"kustomization.yaml"}
    on_disk -= {p.name for p in r.K8S.glob("*-values.yaml")}  # Helm values, not objects
    assert listed == on_disk
    kinds = set()
    for obj in r.k8s_objects():
        assert {"apiVersion", "kind", "metadata"} <= set(obj), obj
        assert obj["metadata"].get("name"), obj
        kinds.add(obj["kind"])
    assert {"Deployment", "Service", "StatefulSet", "HorizontalPodAutoscaler"} <= kinds
    for path in r.K8S.glob("*-values.yaml"):
        assert r.load_yaml(path), path.name
    assert r.compose()["services"]


def test_the_api_port_agrees_everywhere() -> None:
    compose = r.compose()["services"]
    serve = r._argv(compose["api"]["command"])
    port = int(_flag(serve, "--port") or DEFAULT_PORT)
    assert any(str(p).endswith(f":{port}") for p in compose["api"]["ports"])
    assert f":{port}/v1/health/" in " ".join(r._compose_test(compose["api"]["healthcheck"]["test"]))

    api = r.k8s_object("Deployment", "memgrid-api")
    (container,) = api["spec"]["template"]["spec"]["containers"]
    argv = tuple(container["args"])
    k8s_port = int(_flag(argv, "--port") or DEFAULT_PORT)
    assert [p["containerPort"] for p in container["ports"]] == [k8s_port]
    named = container["ports"][0]["name"]
    for probe in ("readinessProbe", "livenessProbe"):
        check = container[probe].get("httpGet") or container[probe]["tcpSocket"]
        assert check["port"] in (k8s_port, named), probe
    service = r.k8s_object("Service", "memgrid-api")
    assert (
        service["spec"]["selector"].items() <= api["spec"]["template"]["metadata"]["labels"].items()
    )
    assert [p["targetPort"] for p in service["spec"]["ports"]] in ([k8s_port], [named])

    unit = r.systemd_unit("memgrid-api.service")["Service"]
    assert _flag(tuple(unit["ExecStart"].split()), "--port") == str(DEFAULT_PORT)

    expose = [i.value for i in r.dockerfile() if i.keyword == "EXPOSE"]
    assert expose == [str(DEFAULT_PORT)]


def _url_target(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname and parts.port, f"{url!r}: say the host and port"
    return parts.hostname, parts.port


def test_memgrid_finds_redis_and_qdrant_where_the_recipes_serve_them() -> None:
    compose = r.compose()["services"]
    for service in ("api", "worker"):
        env = compose[service]["environment"]
        host, port = _url_target(env["MEMGRID_REDIS_URL"])
        assert (host, port) == ("redis", 6379) and "redis" in compose
        assert _flag(r._argv(compose["redis"]["command"]), "--port") in (None, "6379")
        host, port = _url_target(env["MEMGRID_QDRANT_URL"])
        assert (host, port) == ("qdrant", 6333) and "qdrant" in compose
        depends = compose[service]["depends_on"]
        assert depends["redis"]["condition"] == depends["qdrant"]["condition"] == "service_healthy"

    config = r.k8s_object("ConfigMap", "memgrid-config")["data"]
    for var, name in (("MEMGRID_REDIS_URL", "redis"), ("MEMGRID_QDRANT_URL", "qdrant")):
        host, port = _url_target(config[var])
        service = r.k8s_object("Service", name)
        assert host == name
        assert port in [p["port"] for p in service["spec"]["ports"]]
        backend = r.k8s_object("StatefulSet", name)
        assert backend["spec"]["serviceName"] == name
        labels = backend["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        (container,) = backend["spec"]["template"]["spec"]["containers"]
        assert port in [p["containerPort"] for p in container["ports"]]
    for deployment in ("memgrid-api", "memgrid-worker"):
        (container,) = r.k8s_object("Deployment", deployment)["spec"]["template"]["spec"][
            "containers"
        ]
        refs = [e["configMapRef"]["name"] for e in container["envFrom"] if "configMapRef" in e]
        assert refs == ["memgrid-config"], deployment


def test_every_process_has_a_health_check() -> None:
    compose = r.compose()["services"]
    for name, service in compose.items():
        assert service.get("healthcheck", {}).get("test"), f"compose {name}"
    assert r._compose_test(compose["worker"]["healthcheck"]["test"]) == (
        "memgrid",
        "worker",
        "--check",
    )
    for obj in r.k8s_objects():
        if obj["kind"] in ("Deployment", "StatefulSet"):
            for container in obj["spec"]["template"]["spec"]["containers"]:
                for probe in ("livenessProbe", "readinessProbe"):
                    assert probe in container, f"{obj['metadata']['name']} has no {probe}"
    (worker,) = r.k8s_object("Deployment", "memgrid-worker")["spec"]["template"]["spec"][
        "containers"
    ]
    assert worker["livenessProbe"]["exec"]["command"] == ["memgrid", "worker", "--check"]
    # The API answers 503 while Redis is down and recovers by itself: restarting it then
    # helps nobody, so its liveness is the socket and its readiness is /v1/health/.
    (api,) = r.k8s_object("Deployment", "memgrid-api")["spec"]["template"]["spec"]["containers"]
    assert api["readinessProbe"]["httpGet"]["path"] == "/v1/health/"
    assert "tcpSocket" in api["livenessProbe"]
    healthchecks = [i for i in r.dockerfile() if i.keyword == "HEALTHCHECK"]
    assert len(healthchecks) == 1 and "/v1/health/" in healthchecks[0].value


def test_workers_get_their_whole_drain_before_they_are_killed() -> None:
    compose = r.compose()["services"]["worker"]
    drain = _drain_s(r._argv(compose["command"]))
    assert _seconds(compose["stop_grace_period"]) > drain

    spec = r.k8s_object("Deployment", "memgrid-worker")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    drain = _drain_s(tuple(container["args"]))
    assert spec["terminationGracePeriodSeconds"] > drain
    pre_stop = " ".join(container["lifecycle"]["preStop"]["exec"]["command"])
    assert "kill -TERM 1" in pre_stop, "preStop starts the drain (SIGTERM to the worker)"

    unit = r.systemd_unit("memgrid-worker.service")["Service"]
    drain = _drain_s(tuple(unit["ExecStart"].split()))
    assert _seconds(unit["TimeoutStopSec"]) > drain
    assert unit["KillSignal"] == "SIGTERM"


def _redis_argv(argv: tuple[str, ...]) -> dict[str, str]:
    options: dict[str, str] = {}
    for i, word in enumerate(argv):
        if word.startswith("--"):
            options[word[2:]] = argv[i + 1]
    return options


def test_redis_keeps_an_aof_on_a_volume_and_never_evicts() -> None:
    compose = r.compose()
    redis = compose["services"]["redis"]
    k8s = r.k8s_object("StatefulSet", "redis")
    (container,) = k8s["spec"]["template"]["spec"]["containers"]
    for where, argv in (
        ("compose", r._argv(redis["command"])),
        ("k8s", tuple(container.get("command", [])) + tuple(container.get("args", []))),
    ):
        options = _redis_argv(argv)
        assert options.get("appendonly") == "yes", where
        assert options.get("appendfsync") == "everysec", f"{where}: docs/deploy.md says everysec"
        assert options.get("maxmemory-policy") == "noeviction", where
        assert options.get("dir") == "/data", where
    assert any(v.endswith(":/data") for v in redis["volumes"])
    assert any(m["mountPath"] == "/data" for m in container["volumeMounts"])
    assert k8s["spec"]["volumeClaimTemplates"]
    for name in ("redis", "qdrant"):
        image = str(compose["services"][name]["image"])
        assert ":" in image and not image.endswith(":latest"), f"pin the {name} image"


def test_the_image_is_slim_and_runs_as_a_user_not_root() -> None:
    instructions = r.dockerfile()
    final = max(i.stage for i in instructions)
    froms = [i.value for i in instructions if i.keyword == "FROM"]
    assert all("-slim" in f for f in froms), froms
    users = [i.value for i in instructions if i.keyword == "USER" and i.stage == final]
    assert users and users[-1] not in ("root", "0") and not users[-1].startswith("0:")
    final_steps = [i for i in instructions if i.stage == final]
    user_at = max(n for n, i in enumerate(final_steps) if i.keyword == "USER")
    # The model is built at image build time, as the user that will read it.
    assert any(
        i.keyword == "RUN" and "memgrid models prepare" in i.value for i in final_steps[user_at:]
    )
    env = r.dockerfile_env()
    assert env["MEMGRID_HOME"] and env["MEMGRID_API_HOST"] == "0.0.0.0"
    (cmd,) = [i for i in instructions if i.keyword == "CMD"]
    assert r.dockerfile_argv(cmd.value)[:2] == ("memgrid", "up")


def _hpa_metric() -> tuple[dict[str, Any], str]:
    hpa = r.k8s_object("HorizontalPodAutoscaler", "memgrid-worker")
    (metric,) = hpa["spec"]["metrics"]
    return hpa, metric["external"]["metric"]["name"]


def test_the_autoscaler_scales_workers_on_the_documented_inbox_lag_metric() -> None:
    hpa, name = _hpa_metric()
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "memgrid-worker",
    }
    assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    assert name == "memgrid_ready_oldest_unread_age_seconds"  # the inbox lag (docs/metrics.md)
    (values,) = r.load_yaml(r.K8S / "prometheus-adapter-values.yaml")
    assert [rule["name"]["as"] for rule in values["rules"]["external"]] == [name]
    assert name in values["rules"]["external"][0]["seriesQuery"]
    docs = (r.ROOT / "docs/deploy.md").read_text()
    assert name in docs and "metrics.md" in docs
    assert name in (r.ROOT / "docs/metrics.md").read_text(), f"{name} is not in docs/metrics.md"


def test_every_link_in_the_deploy_docs_resolves() -> None:
    for doc in (r.ROOT / "docs/deploy.md", r.DEPLOY / "README.md"):
        links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text())
        local = [link for link in links if "://" not in link]
        assert local, doc.name
        for link in local:
            assert (doc.parent / link).exists(), f"{doc.name} links to missing {link}"
    mentioned = (r.ROOT / "docs/deploy.md").read_text()
    for path in [*r.DEPLOY.glob("*"), *r.K8S.glob("*")]:
        if path.is_file() and path.name != "README.md":
            assert path.name in mentioned, f"docs/deploy.md never mentions deploy/.../{path.name}"
