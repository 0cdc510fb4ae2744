"""compose/docker-compose.yml stays in step with the code (issue 2, point 8).

The production-like stack cannot run here (no Docker engine), so this checks the file itself:

- structure: the brokers, the stores and the project's services are there, every project service is built from
  compose/Dockerfile, long-running services are health-checked on /healthz, restart, and wait for the one-shot
  `topics` and `migrate` jobs to complete successfully;
- every `CV_*` name set anywhere is a real field of `chargeverse.settings.Settings` (and nothing else configures the
  project's services);
- each long-running service sets the endpoints it needs, and they point at the compose services and their ports;
- Kafka is KRaft (no ZooKeeper) on 3 brokers, replication 3, min.insync.replicas 2, auto-creation off;
- no literal secret: passwords, secrets and DSNs come from required `${VAR:?...}` interpolation.

Each check is a function returning the problems it finds; the tests assert the real file has none, and the
`test_each_check_catches_*` tests feed each check a broken copy of the file, so every check is shown to be able to
fail.  Where `docker compose` and a working engine exist, `docker compose config` validates the file as Compose
itself reads it.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from chargeverse.settings import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_DIR = REPO / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
DOCKERFILE = COMPOSE_DIR / "Dockerfile"
README = COMPOSE_DIR / "README.md"

BROKERS = ("kafka-1", "kafka-2", "kafka-3")
STORES = ("postgres", "mongo", "redis")
LONG_RUNNING = ("ocpp", "api", "worker")
ONE_SHOT = ("topics", "migrate")
PROJECT = LONG_RUNNING + ONE_SHOT
ENDPOINTS = ("CV_KAFKA_BOOTSTRAP", "CV_POSTGRES_DSN", "CV_REDIS_URL", "CV_MONGO_URL")

#: `${NAME}`, `${NAME:?msg}`, `${NAME:-default}`, ... (`$${` is Compose's escaped literal `${`)
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")
SECRET_KEY = re.compile(r"PASSWORD|SECRET|DSN|AUTH|TOKEN", re.I)


def allowed_cv_names() -> set[str]:
    prefix = Settings.model_config["env_prefix"]
    assert prefix == "CV_"
    return {prefix + name.upper() for name in Settings.model_fields}


def load() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE_FILE.read_text())
    # a JSON round trip resolves YAML anchors into independent copies, so a test can break one service alone
    return json.loads(json.dumps(doc))


def env(svc: dict[str, Any]) -> dict[str, str]:
    e = svc.get("environment") or {}
    if isinstance(e, list):
        return dict((item.split("=", 1) + [""])[:2] for item in e)
    return {k: "" if v is None else str(v).lower() if isinstance(v, bool) else str(v) for k, v in e.items()}


def as_text(value: Any) -> str:
    return " ".join(value) if isinstance(value, list) else str(value or "")


def resolve(value: str) -> str:
    """Stand-in for Compose's interpolation: `${NAME...}` becomes `__NAME__` (URL-safe, so URLs still parse)."""
    return INTERPOLATION.sub(lambda m: f"__{m.group(1)}__", value)


def var_of(value: str) -> str | None:
    """The single variable a secret-bearing value interpolates, if any."""
    names = {m.group(1) for m in INTERPOLATION.finditer(value)}
    return names.pop() if len(names) == 1 else None


def all_strings(obj: Any, where: str = "") -> list[tuple[str, str]]:
    if isinstance(obj, dict):
        return [s for k, v in obj.items() for s in all_strings(v, f"{where}.{k}" if where else str(k))]
    if isinstance(obj, list):
        return [s for i, v in enumerate(obj) for s in all_strings(v, f"{where}[{i}]")]
    return [(where, obj)] if isinstance(obj, str) else []


def required_variables(doc: dict[str, Any]) -> set[str]:
    """Names the file interpolates as required (`${NAME:?...}`): what compose/.env must provide."""
    return {m.group(1) for _, s in all_strings(doc) for m in INTERPOLATION.finditer(s) if m.group(2) in (":?", "?")}


# ---- the checks -------------------------------------------------------------------------------------------------
def structure_problems(doc: dict[str, Any]) -> list[str]:
    problems = []
    services = doc.get("services") or {}
    for name in (*BROKERS, *STORES, *PROJECT):
        if name not in services:
            problems.append(f"service {name} missing")
    images = {"postgres": "postgis/postgis:15-3.4", "mongo": "mongo:7", "redis": "redis:7"}
    for name, prefix in images.items():
        if name in services and not str(services[name].get("image", "")).startswith(prefix):
            problems.append(f"{name}: image {services[name].get('image')!r} is not {prefix}*")
    for name in BROKERS:
        if name in services and not str(services[name].get("image", "")).startswith("apache/kafka:"):
            problems.append(f"{name}: not the official apache/kafka image")
    for name in PROJECT:
        svc = services.get(name) or {}
        build = svc.get("build")
        if not isinstance(build, dict):
            problems.append(f"{name}: not built from compose/Dockerfile (build: {build!r})")
            continue
        context = (COMPOSE_DIR / build.get("context", ".")).resolve()
        dockerfile = (context / build.get("dockerfile", "Dockerfile")).resolve()
        if dockerfile != DOCKERFILE.resolve():
            problems.append(f"{name}: built from {dockerfile}, not {DOCKERFILE}")
        if context != REPO:
            problems.append(f"{name}: build context {context} is not the repository root (pip install . needs it)")
    for name in (*BROKERS, *STORES, *LONG_RUNNING):
        svc = services.get(name) or {}
        hc = svc.get("healthcheck") or {}
        if not hc.get("test") or hc.get("disable"):
            problems.append(f"{name}: no healthcheck")
        elif name in LONG_RUNNING and "/healthz" not in as_text(hc["test"]):
            problems.append(f"{name}: healthcheck does not probe /healthz")
        if svc and svc.get("restart") not in ("always", "unless-stopped", "on-failure"):
            problems.append(f"{name}: restart policy {svc.get('restart')!r}")
    for name in ONE_SHOT:
        if name in services and str(services[name].get("restart", "no")) != "no":
            problems.append(f"{name}: a one-shot job must not restart")
    for name in LONG_RUNNING:
        deps = (services.get(name) or {}).get("depends_on") or {}
        for job in ONE_SHOT:
            cond = deps.get(job, {}).get("condition") if isinstance(deps, dict) else None
            if cond != "service_completed_successfully":
                problems.append(f"{name}: depends on {job} with {cond!r}, not service_completed_successfully")
    declared = set(doc.get("volumes") or {})
    for name, svc in services.items():
        for v in svc.get("volumes") or []:
            source = v.split(":", 1)[0] if isinstance(v, str) else v.get("source")
            if source and not source.startswith((".", "/", "~")) and source not in declared:
                problems.append(f"{name}: volume {source} is not a declared named volume")
    for name in (*BROKERS, *STORES):
        if name in services and not services[name].get("volumes"):
            problems.append(f"{name}: keeps its data in no named volume")
    return problems


def unknown_cv_names(doc: dict[str, Any], dockerfile: str) -> list[str]:
    allowed = allowed_cv_names()
    problems = []
    for name, svc in (doc.get("services") or {}).items():
        for key in env(svc):
            if key.startswith("CV_") and key not in allowed:
                problems.append(f"{name}: {key} is not a setting")
        if name in PROJECT:
            for key in env(svc):
                if not key.startswith("CV_"):
                    problems.append(f"{name}: {key} configures a project service outside the CV_* settings")
    for key in re.findall(r"\b(CV_[A-Z0-9_]+)=", dockerfile):
        if key not in allowed:
            problems.append(f"Dockerfile: {key} is not a setting")
    return problems


def requirepass_arg(svc: dict[str, Any]) -> str | None:
    """The value redis-server gets for --requirepass, from a list or a string command."""
    cmd = svc.get("command")
    if isinstance(cmd, list):
        return str(cmd[cmd.index("--requirepass") + 1]) if "--requirepass" in cmd[:-1] else None
    m = re.search(r"--requirepass[ =](\$\{[^}]*\}|\S+)", str(cmd or ""))
    return m.group(1) if m else None


def _listener_port(svc: dict[str, Any], listener: str) -> int | None:
    for part in env(svc).get("KAFKA_LISTENERS", "").split(","):
        if part.startswith(listener + "://"):
            return int(part.rsplit(":", 1)[1])
    return None


def endpoint_problems(doc: dict[str, Any]) -> list[str]:
    services = doc.get("services") or {}
    problems = []
    needs = {**{s: ENDPOINTS for s in LONG_RUNNING}, "topics": ("CV_KAFKA_BOOTSTRAP",),
             "migrate": ("CV_POSTGRES_DSN",)}
    brokers = {f"{b}:{_listener_port(services[b], 'PLAINTEXT')}" for b in BROKERS if b in services}
    pg = env(services.get("postgres", {}))
    mongo = services.get("mongo", {})
    mongo_cmd = as_text(mongo.get("entrypoint")) + " " + as_text(mongo.get("command"))
    repl = re.search(r"--replSet[ =](\S+)", mongo_cmd)
    requirepass = requirepass_arg(services.get("redis", {}))
    for name, keys in needs.items():
        e = env(services.get(name, {}))
        for key in keys:
            if key not in e:
                problems.append(f"{name}: {key} not set")
        if "CV_KAFKA_BOOTSTRAP" in e:
            hosts = {h.strip() for h in e["CV_KAFKA_BOOTSTRAP"].split(",")}
            if hosts != brokers:
                problems.append(f"{name}: CV_KAFKA_BOOTSTRAP {sorted(hosts)} is not the brokers {sorted(brokers)}")
        if "CV_POSTGRES_DSN" in e:
            u = urlsplit(resolve(e["CV_POSTGRES_DSN"]))
            if (u.scheme, u.hostname, u.port) != ("postgresql", "postgres", 5432):
                problems.append(f"{name}: CV_POSTGRES_DSN points at {u.scheme}://{u.hostname}:{u.port}")
            if u.username != pg.get("POSTGRES_USER") or u.path.lstrip("/") != pg.get("POSTGRES_DB"):
                problems.append(f"{name}: CV_POSTGRES_DSN user/database differ from the postgres service's")
            if var_of(e["CV_POSTGRES_DSN"]) != var_of(pg.get("POSTGRES_PASSWORD", "")):
                problems.append(f"{name}: CV_POSTGRES_DSN does not use the postgres service's password variable")
        if "CV_REDIS_URL" in e:
            u = urlsplit(resolve(e["CV_REDIS_URL"]))
            if (u.scheme, u.hostname, u.port) != ("redis", "redis", 6379):
                problems.append(f"{name}: CV_REDIS_URL points at {u.scheme}://{u.hostname}:{u.port}")
            if not requirepass or var_of(e["CV_REDIS_URL"]) != var_of(requirepass):
                problems.append(f"{name}: CV_REDIS_URL does not use redis' requirepass variable")
        if "CV_MONGO_URL" in e:
            u = urlsplit(resolve(e["CV_MONGO_URL"]))
            if (u.scheme, u.hostname, u.port) != ("mongodb", "mongo", 27017):
                problems.append(f"{name}: CV_MONGO_URL points at {u.scheme}://{u.hostname}:{u.port}")
            menv = env(mongo)
            if u.username != menv.get("MONGO_INITDB_ROOT_USERNAME") or (
                    var_of(e["CV_MONGO_URL"]) != var_of(menv.get("MONGO_INITDB_ROOT_PASSWORD", ""))):
                problems.append(f"{name}: CV_MONGO_URL credentials differ from the mongo service's")
            if not repl or parse_qs(u.query).get("replicaSet") != [repl.group(1)]:
                problems.append(f"{name}: CV_MONGO_URL replicaSet does not name mongod's --replSet "
                                "(the frame archive needs transactions)")
    published = {"ocpp": "CV_OCPP", "api": "CV_API"}
    for name, prefix in published.items():
        e = env(services.get(name, {}))
        if e.get(f"{prefix}_HOST") != "0.0.0.0":
            problems.append(f"{name}: {prefix}_HOST must be 0.0.0.0 in a container")
        ports = [str(p) for p in services.get(name, {}).get("ports") or []]
        if not any(p.rsplit(":", 1)[-1] == e.get(f"{prefix}_PORT") for p in ports):
            problems.append(f"{name}: no published port maps to {prefix}_PORT={e.get(f'{prefix}_PORT')}")
    return problems


def kafka_problems(doc: dict[str, Any]) -> list[str]:
    services = doc.get("services") or {}
    problems = []
    for name, svc in services.items():
        if "zookeeper" in name.lower() or "zookeeper" in str(svc.get("image", "")).lower():
            problems.append(f"{name}: ZooKeeper; the stack must be KRaft")
        if any("ZOOKEEPER" in k for k in env(svc)):
            problems.append(f"{name}: configures ZooKeeper")
    brokers = {n: s for n, s in services.items() if str(s.get("image", "")).startswith("apache/kafka")}
    if len(brokers) != 3:
        problems.append(f"{len(brokers)} Kafka brokers, not 3")
    want = {
        "KAFKA_DEFAULT_REPLICATION_FACTOR": "3",
        "KAFKA_MIN_INSYNC_REPLICAS": "2",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "3",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "3",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "2",
    }
    node_ids, voters, cluster_ids = {}, set(), set()
    for name, svc in brokers.items():
        e = env(svc)
        for key, value in want.items():
            if e.get(key, "").lower() != value:
                problems.append(f"{name}: {key}={e.get(key)!r}, want {value}")
        roles = set(e.get("KAFKA_PROCESS_ROLES", "").split(","))
        if "controller" not in roles or "broker" not in roles:
            problems.append(f"{name}: KAFKA_PROCESS_ROLES {sorted(roles)} (KRaft broker+controller expected)")
        node_ids[name] = e.get("KAFKA_NODE_ID")
        voters.add(e.get("KAFKA_CONTROLLER_QUORUM_VOTERS"))
        cluster_ids.add(e.get("CLUSTER_ID"))
        if f"PLAINTEXT://{name}:" not in e.get("KAFKA_ADVERTISED_LISTENERS", ""):
            problems.append(f"{name}: does not advertise its compose name to the other services")
    if len(set(node_ids.values())) != len(brokers) or None in node_ids.values():
        problems.append(f"broker node ids not distinct: {node_ids}")
    if len(voters) != 1 or len(cluster_ids) != 1 or None in cluster_ids:
        problems.append("brokers disagree on the controller quorum or the cluster id")
    else:
        quorum = {v.split("@", 1)[1].split(":")[0]: v.split("@", 1)[0] for v in voters.pop().split(",")}
        if quorum != node_ids:
            problems.append(f"controller quorum {quorum} is not the brokers {node_ids}")
    return problems


def secret_problems(doc: dict[str, Any]) -> list[str]:
    problems = []

    def required_interpolation(where: str, value: str) -> None:
        matches = list(INTERPOLATION.finditer(value))
        if not matches:
            problems.append(f"{where}: literal secret (no ${{...}})")
        for m in matches:
            if m.group(2) not in (":?", "?"):
                problems.append(f"{where}: ${{{m.group(1)}}} must be required (${{VAR:?...}}), never defaulted")

    for name, svc in (doc.get("services") or {}).items():
        for key, value in env(svc).items():
            if SECRET_KEY.search(key):
                required_interpolation(f"{name}.{key}", value)
        for where, value in all_strings(svc, name):
            for userinfo in re.findall(r"://([^/@\s]*)@", resolve(value)):
                password = userinfo.split(":", 1)[1] if ":" in userinfo else ""
                if ":" in userinfo and not re.fullmatch(r"__[A-Za-z0-9_]+__", password):
                    problems.append(f"{where}: URL carries a literal password")
        password = requirepass_arg(svc)
        if password is not None:
            required_interpolation(f"{name}: --requirepass", password)
    return problems


# ---- the real file has no problems ------------------------------------------------------------------------------
def test_compose_file_parses_and_has_the_production_structure() -> None:
    assert structure_problems(load()) == []


def test_every_cv_variable_is_a_setting() -> None:
    doc = load()
    assert unknown_cv_names(doc, DOCKERFILE.read_text()) == []
    used = {k for s in doc["services"].values() for k in env(s) if k.startswith("CV_")}
    assert {"CV_KAFKA_BOOTSTRAP", "CV_POSTGRES_DSN", "CV_REDIS_URL", "CV_MONGO_URL", "CV_JWT_SECRET"} <= used


def test_services_point_at_the_compose_brokers_and_stores() -> None:
    assert endpoint_problems(load()) == []


def test_kafka_is_kraft_with_three_brokers_replication_3_min_isr_2_and_no_auto_creation() -> None:
    assert kafka_problems(load()) == []


def test_no_literal_secrets() -> None:
    assert secret_problems(load()) == []


def test_every_required_variable_is_documented() -> None:
    required = required_variables(load())
    assert required >= {"POSTGRES_PASSWORD", "MONGO_PASSWORD", "REDIS_PASSWORD", "JWT_SECRET"}
    readme = README.read_text()
    assert [v for v in sorted(required) if f"`{v}`" not in readme] == []


def test_dockerfile_installs_the_project_as_a_non_root_user_with_entrypoint_cv() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim-bookworm\b", text, re.M)
    assert re.search(r"pip install \.(\s|$)", text)
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert re.search(r'^ENTRYPOINT \["cv"\]', text, re.M)


# ---- each check can fail ----------------------------------------------------------------------------------------
def _svc(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return doc["services"][name]


BREAKAGES: list[tuple[str, Callable[[dict[str, Any]], None], Callable[[dict[str, Any]], list[str]]]] = [
    ("mongo service missing", lambda d: d["services"].pop("mongo"), structure_problems),
    ("api built elsewhere", lambda d: _svc(d, "api")["build"].update(dockerfile="Dockerfile.other"),
     structure_problems),
    ("worker without healthcheck", lambda d: _svc(d, "worker").pop("healthcheck"), structure_problems),
    ("ocpp healthcheck not on /healthz",
     lambda d: _svc(d, "ocpp")["healthcheck"].update(test=["CMD", "true"]), structure_problems),
    ("api without restart policy", lambda d: _svc(d, "api").pop("restart"), structure_problems),
    ("worker starts before migrations finish",
     lambda d: _svc(d, "worker")["depends_on"]["migrate"].update(condition="service_started"), structure_problems),
    ("misspelled CV_ name", lambda d: _svc(d, "worker")["environment"].update(CV_WORKER_WEBPORT="6066"),
     lambda d: unknown_cv_names(d, "")),
    ("non-CV configuration of a project service", lambda d: _svc(d, "api")["environment"].update(API_PORT="1"),
     lambda d: unknown_cv_names(d, "")),
    ("ocpp without CV_MONGO_URL", lambda d: _svc(d, "ocpp")["environment"].pop("CV_MONGO_URL"), endpoint_problems),
    ("bootstrap on the controller port",
     lambda d: _svc(d, "api")["environment"].update(CV_KAFKA_BOOTSTRAP="kafka-1:9093,kafka-2:9093,kafka-3:9093"),
     endpoint_problems),
    ("bootstrap missing a broker",
     lambda d: _svc(d, "worker")["environment"].update(CV_KAFKA_BOOTSTRAP="kafka-1:9092"), endpoint_problems),
    ("DSN at a host that is no service",
     lambda d: _svc(d, "worker")["environment"].update(
         CV_POSTGRES_DSN="postgresql://chargeverse:${POSTGRES_PASSWORD:?x}@db:5432/chargeverse"),
     endpoint_problems),
    ("redis URL at the wrong port",
     lambda d: _svc(d, "api")["environment"].update(CV_REDIS_URL="redis://:${REDIS_PASSWORD:?x}@redis:6380/0"),
     endpoint_problems),
    ("mongo URL without the replica set",
     lambda d: _svc(d, "ocpp")["environment"].update(
         CV_MONGO_URL="mongodb://chargeverse:${MONGO_PASSWORD:?x}@mongo:27017/?authSource=admin"),
     endpoint_problems),
    ("api bound to loopback", lambda d: _svc(d, "api")["environment"].update(CV_API_HOST="127.0.0.1"),
     endpoint_problems),
    ("a zookeeper service", lambda d: d["services"].update(zookeeper={"image": "zookeeper:3.9"}), kafka_problems),
    ("two brokers", lambda d: d["services"].pop("kafka-3"), kafka_problems),
    ("min ISR 1", lambda d: _svc(d, "kafka-2")["environment"].update(KAFKA_MIN_INSYNC_REPLICAS="1"),
     kafka_problems),
    ("replication 2", lambda d: _svc(d, "kafka-1")["environment"].update(KAFKA_DEFAULT_REPLICATION_FACTOR="2"),
     kafka_problems),
    ("auto-create on", lambda d: _svc(d, "kafka-3")["environment"].update(KAFKA_AUTO_CREATE_TOPICS_ENABLE="true"),
     kafka_problems),
    ("duplicate node id", lambda d: _svc(d, "kafka-3")["environment"].update(KAFKA_NODE_ID="1"), kafka_problems),
    ("literal postgres password", lambda d: _svc(d, "postgres")["environment"].update(POSTGRES_PASSWORD="hunter2"),
     secret_problems),
    ("literal password in a DSN",
     lambda d: _svc(d, "migrate")["environment"].update(
         CV_POSTGRES_DSN="postgresql://chargeverse:hunter2@postgres:5432/chargeverse"), secret_problems),
    ("literal password in a redis URL",
     lambda d: _svc(d, "worker")["environment"].update(CV_REDIS_URL="redis://:hunter2@redis:6379/0"),
     secret_problems),
    ("defaulted secret", lambda d: _svc(d, "api")["environment"].update(CV_JWT_SECRET="${JWT_SECRET:-changeme}"),
     secret_problems),
    ("literal requirepass",
     lambda d: _svc(d, "redis").update(command=["redis-server", "--requirepass", "hunter2"]), secret_problems),
]


@pytest.mark.parametrize("breakage, check", [(b, c) for _, b, c in BREAKAGES], ids=[n for n, _, _ in BREAKAGES])
def test_each_check_catches_a_broken_file(breakage: Callable[[dict[str, Any]], None],
                                          check: Callable[[dict[str, Any]], list[str]]) -> None:
    doc = load()
    assert check(copy.deepcopy(doc)) == []
    breakage(doc)
    assert check(doc) != []


# ---- Compose itself, where it can run ---------------------------------------------------------------------------
def _docker_compose_unavailable() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return "no docker CLI on this machine"
    try:
        info = subprocess.run([docker, "info"], capture_output=True, timeout=30)
        if info.returncode != 0:
            return f"`docker info` exits {info.returncode}: no Docker engine here (DESIGN.md §5)"
        version = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30)
        if version.returncode != 0:
            return "the docker CLI has no `compose` plugin"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker did not answer: {exc}"
    return None


def test_docker_compose_config_accepts_the_file() -> None:
    reason = _docker_compose_unavailable()
    if reason:
        pytest.skip(f"docker compose config not run: {reason}")
    required = required_variables(load())
    run_env = {**os.environ, **{v: "0123456789abcdef" for v in required}}
    r = subprocess.run(["docker", "compose", "-f", str(COMPOSE_FILE), "config", "--quiet"], cwd=REPO,
                       env=run_env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
