"""Static checks of compose.yaml, Dockerfile, .dockerignore and .env.example.

No Docker engine runs the stack in CI, so these tests are what keeps the deployment files honest: the compose
file is validated against the official Compose Specification schema (tests/unit/data/compose-spec.json, see
tests/unit/data/README.md for its provenance) and cross-checked against the topic list, the services' settings
classes, the console scripts of pyproject.toml and .env.example.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import re
import shlex
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema.validators import validator_for

from schemas.topics import ALL_TOPICS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"
COMPOSE_SPEC_SCHEMA = Path(__file__).resolve().parent / "data" / "compose-spec.json"

APP_PREFIXES = {"ingest": "INGEST_", "orientation": "ORIENTATION_", "notifier": "NOTIFIER_", "workspace": "WORKSPACE_"}
SETTINGS_CLASSES = {
    "ingest": "services.ingest.settings:IngestSettings",
    "orientation": "services.orientation.settings:OrientationSettings",
    "notifier": "services.notifier.settings:NotifierSettings",
    "workspace": "services.workspace.settings:WorkspaceSettings",
}
APP_COMMANDS = {
    "ingest": ["prevex-ingest"],
    "orientation": ["prevex-orientation"],
    "notifier": ["prevex-notifier"],
    "workspace": ["prevex-workspace"],
}
COMMON_SETTINGS = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "LOG_LEVEL", "KAFKA_FETCH_MAX_WAIT_MS")
SPECIFIC_SETTINGS = {
    "ingest": ("TERRITORY_DEPARTEMENTS", "EMITTERS_PATH", "RAW_RETENTION_DAYS", "HTTP_HOST", "HTTP_PORT"),
    "orientation": ("REFERENTIAL_PATH", "MAX_STRUCTURES", "HTTP_HOST", "HTTP_PORT", "ADMIN_TOKENS_PATH"),
    "notifier": (
        "SMTP_HOST",
        "SMTP_PORT",
        "SMTP_TLS",
        "SMTP_FROM",
        "REPLY_TO",
        "SMTP_USERNAME",
        "SMTP_PASSWORD",
        "LINK_BASE_URL",
        "LINK_SECRETS",
        "SMS_PROVIDER",
        "OVH_APPLICATION_KEY",
        "OVH_APPLICATION_SECRET",
        "OVH_CONSUMER_KEY",
        "OVH_SERVICE_NAME",
        "BREVO_API_KEY",
        "HTTP_HOST",
        "HTTP_PORT",
    ),
    "workspace": (
        "LINK_SECRETS",
        "HTTP_HOST",
        "HTTP_PORT",
        "OPS_HTTP_HOST",
        "OPS_HTTP_PORT",
        "COOKIE_SECURE",
        "RETENTION_DAYS",
        "DESK_TOKENS_PATH",
        "DESK_OVERDUE_WORKING_DAYS",
        "LINK_REQUEST_INTERVAL_MINUTES",
        "ORIENTATION_URL",
        "ORIENTATION_TOKEN_PATH",
    ),
}

EXPECTED_TOPICS = frozenset(
    {
        "exp.raw.cj.v1",
        "exp.raw.bailleur.v1",
        "exp.raw.prefecture.v1",
        "exp.procedure.notification.v1",
        "exp.ingest.rejected.v1",
        "exp.ingest.duplicate.v1",
        "exp.referentiel.changed.v1",
        "exp.orientation.decided.v1",
        "exp.orientation.unmatched.v1",
        "exp.notification.sent.v1",
        "exp.notification.failed.v1",
        "exp.notification.undeliverable.v1",
        "exp.assignment.status.v1",
        "exp.assignment.escalation.v1",
        "exp.workspace.link_requested.v1",
    }
)
COMPACTED_TOPICS = frozenset({"exp.referentiel.changed.v1"})
TOPIC_PARTITIONS = "6"

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}; "$$" is a literal "$".
_INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
_SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|PRIVATE_KEY", re.IGNORECASE)
_URL_USERINFO_PASSWORD = re.compile(r"://[^/@:\s]*:(?P<password>[^@\s]*)@")


# --------------------------------------------------------------------------------------------- helpers


def _load_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "compose.yaml must be a mapping"
    return data


def _services() -> dict[str, dict[str, Any]]:
    services = _load_compose()["services"]
    assert isinstance(services, dict)
    return services


def _environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's `environment:` as a mapping (the list form "NAME=value" is normalised)."""
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {name: "" if value is None else str(value) for name, value in env.items()}


def _interpolate(text: str, variables: Mapping[str, str]) -> str:
    """Compose-style interpolation of `text` with `variables` (what `docker compose config` would render)."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name", "op", "arg")
        value = variables.get(name)
        if op in {":-", "-"}:
            unset = value is None or (op == ":-" and value == "")
            return arg if unset else str(value)
        if op in {":?", "?"} and (value is None or (op == ":?" and value == "")):
            raise ValueError(f"required variable {name} is missing: {arg}")
        return value or ""

    return _INTERPOLATION.sub(substitute, text)


def _is_bare_reference(value: str) -> bool:
    """True for a value that is exactly one `${NAME}` (or `${NAME:?msg}` / `${NAME:-}`): no literal secret."""
    match = _INTERPOLATION.fullmatch(value)
    if match is None or match.group(0) == "$$":
        return False
    return match.group("op") not in {":-", "-"} or match.group("arg") == ""


def _url_passwords(value: str) -> list[str]:
    """The password of every `scheme://user:password@host` URL in `value`, ${...} references kept whole."""
    references: list[str] = []

    def mask(match: re.Match[str]) -> str:
        references.append(match.group(0))
        return f"\x00{len(references) - 1}\x00"

    def unmask(text: str) -> str:
        return re.sub(r"\x00(\d+)\x00", lambda match: references[int(match.group(1))], text)

    masked = _INTERPOLATION.sub(mask, value)
    return [unmask(match.group("password")) for match in _URL_USERINFO_PASSWORD.finditer(masked)]


def _walk_strings(node: object, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _walk_strings(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk_strings(value, f"{path}[{index}]")
    elif isinstance(node, str):
        yield path, node


def _read_env_example() -> dict[str, str]:
    variables: dict[str, str] = {}
    for number, raw in enumerate(ENV_EXAMPLE.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep, f".env.example:{number}: expected NAME=value, got {raw!r}"
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", name), f".env.example:{number}: bad variable name {name!r}"
        assert name not in variables, f".env.example:{number}: {name} is defined twice"
        variables[name] = value
    return variables


def _env_example_comments() -> dict[str, str]:
    """The comment line right above each variable of .env.example."""
    comments: dict[str, str] = {}
    previous = ""
    for raw in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            comments[line.partition("=")[0]] = previous
        previous = line
    return comments


def _settings_class(service: str) -> Any:
    module_name, class_name = SETTINGS_CLASSES[service].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def _kafka_init_commands() -> list[list[str]]:
    """The shell commands of kafka-init's script, one argv per line."""
    kafka_init = _services()["kafka-init"]
    entrypoint = kafka_init.get("entrypoint")
    command = kafka_init.get("command")
    assert entrypoint == ["/bin/sh", "-ec"], "kafka-init runs its script with `sh -ec` (stops at the first error)"
    assert isinstance(command, list)
    assert len(command) == 1
    script = _interpolate(command[0], {})
    return [shlex.split(line) for line in script.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of the Dockerfile, line continuations joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, arguments = full.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


# ------------------------------------------------------------------------------------ compose: schema


def test_compose_spec_schema_is_a_valid_schema() -> None:
    schema = json.loads(COMPOSE_SPEC_SCHEMA.read_text(encoding="utf-8"))
    validator_class = validator_for(schema)
    # The validator is the draft the schema declares, never a silent fallback.
    assert validator_class.META_SCHEMA["$id"].rstrip("#") == schema["$schema"].rstrip("#")
    validator_class.check_schema(schema)
    assert schema["title"] == "Compose Specification"


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    schema = json.loads(COMPOSE_SPEC_SCHEMA.read_text(encoding="utf-8"))
    validator = validator_for(schema)(schema)
    compose = _load_compose()
    errors = sorted(validator.iter_errors(compose), key=lambda error: list(error.absolute_path))
    details = "\n".join(f"  {error.json_path}: {error.message}" for error in errors)
    assert not errors, f"compose.yaml violates the Compose Specification:\n{details}"


def test_compose_spec_validation_is_not_vacuous() -> None:
    schema = json.loads(COMPOSE_SPEC_SCHEMA.read_text(encoding="utf-8"))
    validator = validator_for(schema)(schema)
    broken = copy.deepcopy(_load_compose())
    broken["services"]["kafka"]["imagee"] = "apache/kafka:3.9.1"
    broken["services"]["postgres"]["depends_on"] = {"kafka": {"condition": "service_ready"}}
    assert len(list(validator.iter_errors(broken))) >= 2


def test_compose_file_uses_the_specification_format() -> None:
    compose = _load_compose()
    assert "version" not in compose, "the Compose Specification has no `version:`; remove it"
    assert set(compose["services"]) == {
        "kafka",
        "kafka-init",
        "postgres",
        "mailpit",
        "ingest",
        "orientation",
        "notifier",
        "workspace",
        "prometheus",
        "grafana",
    }


# ------------------------------------------------------------------------------------ compose: images


def test_every_image_is_pinned_to_a_tag() -> None:
    for name, service in _services().items():
        image = service.get("image")
        if image is None:
            assert "build" in service, f"service {name} has neither image nor build"
            continue
        assert "$" not in image, f"service {name}: image {image!r} must not depend on interpolation"
        if "@sha256:" in image:
            continue
        repository_path = image.rsplit("/", 1)[-1]
        assert ":" in repository_path, f"service {name}: image {image!r} has no tag"
        tag = repository_path.rsplit(":", 1)[1]
        assert tag, f"service {name}: image {image!r} has an empty tag"
        assert tag != "latest", f"service {name}: image {image!r} must not use `latest`"


def test_infrastructure_images() -> None:
    services = _services()
    assert services["kafka"]["image"] == "apache/kafka:3.9.1"
    assert services["kafka-init"]["image"] == "apache/kafka:3.9.1"
    assert services["postgres"]["image"] == "postgres:16-alpine"
    assert services["mailpit"]["image"] == "axllent/mailpit:v1.21"


# ------------------------------------------------------------------------------------ compose: kafka


def test_kafka_is_a_single_kraft_node_without_topic_auto_creation() -> None:
    kafka = _services()["kafka"]
    env = _environment(kafka)
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_LISTENERS"] == "PLAINTEXT://:9092,CONTROLLER://:9093"
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    for name in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[name] == "1", name
    assert "kafka-broker-api-versions.sh --bootstrap-server localhost:9092" in " ".join(kafka["healthcheck"]["test"])
    data_volumes = [volume.split(":", 1)[0] for volume in kafka["volumes"]]
    assert set(data_volumes) <= set(_load_compose()["volumes"]), "kafka stores its log in a named volume"


def test_topic_list_matches_schemas_topics() -> None:
    assert frozenset(ALL_TOPICS) == EXPECTED_TOPICS


def test_kafka_init_creates_every_topic() -> None:
    kafka_init = _services()["kafka-init"]
    assert kafka_init["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    assert kafka_init.get("restart", "no") == "no", "kafka-init is a one-shot job"

    created: dict[str, list[str]] = {}
    for argv in _kafka_init_commands():
        assert argv[0].endswith("/kafka-topics.sh"), f"unexpected command in kafka-init: {shlex.join(argv)}"
        if "--create" not in argv:
            continue
        topic = argv[argv.index("--topic") + 1]
        assert topic not in created, f"{topic} is created twice"
        created[topic] = argv

    assert set(created) == EXPECTED_TOPICS
    for topic, argv in created.items():
        assert "--if-not-exists" in argv, topic
        assert argv[argv.index("--bootstrap-server") + 1] == "kafka:9092", topic
        assert argv[argv.index("--partitions") + 1] == TOPIC_PARTITIONS, topic
        configs = [argv[index + 1] for index, arg in enumerate(argv) if arg == "--config"]
        expected = ["cleanup.policy=compact"] if topic in COMPACTED_TOPICS else []
        assert configs == expected, topic


# --------------------------------------------------------------------------- compose: postgres, mailpit


def test_postgres_takes_its_password_from_the_environment() -> None:
    postgres = _services()["postgres"]
    env = _environment(postgres)
    assert env["POSTGRES_PASSWORD"] == "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in .env}"
    assert env["POSTGRES_USER"].startswith("${POSTGRES_USER")
    assert env["POSTGRES_DB"].startswith("${POSTGRES_DB")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    with pytest.raises(ValueError, match="POSTGRES_PASSWORD"):
        _interpolate(env["POSTGRES_PASSWORD"], {})


def test_mailpit_ports_are_published_on_loopback_only() -> None:
    ports = _services()["mailpit"]["ports"]
    assert sorted(ports) == ["127.0.0.1:1025:1025", "127.0.0.1:8025:8025"]
    for name, service in _services().items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"service {name} publishes {port} beyond loopback"


# ------------------------------------------------------------------------------- compose: application


@pytest.mark.parametrize("service", sorted(APP_PREFIXES))
def test_application_service_runs_its_console_script(service: str) -> None:
    definition = _services()[service]
    assert definition["build"] == "."
    assert "image" not in definition
    assert definition["command"] == APP_COMMANDS[service]
    assert definition["restart"] == "unless-stopped"

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert definition["command"][0] in scripts, "the command must be a console script of pyproject.toml"

    expected = {
        "kafka-init": {"condition": "service_completed_successfully"},
        "postgres": {"condition": "service_healthy"},
    }
    if service == "notifier":
        expected["mailpit"] = {"condition": "service_healthy"}
    assert definition["depends_on"] == expected


@pytest.mark.parametrize(("service", "prefix"), sorted(APP_PREFIXES.items()))
def test_application_environment_uses_the_service_prefix(service: str, prefix: str) -> None:
    env = _environment(_services()[service])
    assert env, f"{service} has no environment"
    foreign = sorted(name for name in env if not name.startswith(prefix))
    assert not foreign, f"{service}: variables without the {prefix} prefix: {foreign}"
    expected = {prefix + name for name in COMMON_SETTINGS + SPECIFIC_SETTINGS[service]}
    assert set(env) == expected


@pytest.mark.parametrize(("service", "prefix"), sorted(APP_PREFIXES.items()))
def test_application_environment_points_at_the_compose_network(service: str, prefix: str) -> None:
    env = {
        name: _interpolate(
            value, {"POSTGRES_PASSWORD": "pw", "PREVEX_LINK_SECRETS": "compose-test-link-secret-0123456789"}
        )
        for name, value in _environment(_services()[service]).items()
    }
    assert env[f"{prefix}KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env[f"{prefix}DATABASE_URL"] == "postgresql://prevex:pw@postgres:5432/prevex"
    assert env[f"{prefix}LOG_LEVEL"] == "INFO"
    assert env[f"{prefix}KAFKA_FETCH_MAX_WAIT_MS"] == "50"


def test_container_paths_exist_in_the_image() -> None:
    """Paths under /app given to the services are files of the repository that the Dockerfile copies."""
    copied = {
        source.rstrip("/")
        for keyword, arguments in _dockerfile_instructions()
        if keyword == "COPY"
        for source in shlex.split(arguments)[:-1]
    }
    for service in APP_PREFIXES:
        for name, value in _environment(_services()[service]).items():
            if not value.startswith("/app/"):
                continue
            relative = value.removeprefix("/app/")
            assert relative.split("/", 1)[0] in copied, f"{service}: {name}={value} is not copied by the Dockerfile"
            assert (ROOT / relative).is_file(), f"{service}: {name}={value} but {relative} is not in the repository"


# ------------------------------------------------------------------------------------ compose: secrets


def test_compose_file_holds_no_literal_secret() -> None:
    compose = _load_compose()
    for path, value in _walk_strings(compose):
        key = path.rsplit(".", 1)[-1]
        # A compose secret's name (services.x.secrets[n]) or its mount path under /run/secrets/ only points
        # at a secret kept outside this file.
        names_a_compose_secret = key.startswith("secrets[") or value.startswith("/run/secrets/")
        if _SECRET_NAME.search(key) and not names_a_compose_secret:
            assert _is_bare_reference(value), f"{path}: a secret must be a bare ${{...}} reference, got {value!r}"
        for password in _url_passwords(value):
            assert _is_bare_reference(password), f"{path}: the password in {value!r} must be a ${{...}} reference"
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    assert "change-me" not in text


def test_every_application_database_url_takes_the_postgres_password() -> None:
    for service, prefix in APP_PREFIXES.items():
        url = _environment(_services()[service])[f"{prefix}DATABASE_URL"]
        assert _url_passwords(url) == ["${POSTGRES_PASSWORD}"], f"{service}: {url!r}"


# --------------------------------------------------------------------------------------- .env.example


def test_env_example_prefixed_variables_are_used_in_compose() -> None:
    variables = _read_env_example()
    services = _services()
    for name in variables:
        for service, prefix in APP_PREFIXES.items():
            if name.startswith(prefix):
                assert name in _environment(services[service]), f".env.example: {name} is not set for {service}"


def test_env_example_documents_every_compose_variable() -> None:
    variables = _read_env_example()
    for service in APP_PREFIXES:
        missing = sorted(set(_environment(_services()[service])) - set(variables))
        assert not missing, f".env.example lacks {missing} (used by {service} in compose.yaml)"
    referenced = {
        match.group("name")
        for match in _INTERPOLATION.finditer(COMPOSE_FILE.read_text(encoding="utf-8"))
        if match.group("name")
    }
    assert referenced - set(variables) == set(), "every ${VAR} of compose.yaml must be in .env.example"


def test_env_example_targets_local_infrastructure() -> None:
    variables = _read_env_example()
    assert variables["POSTGRES_PASSWORD"] == "change-me"
    resolved = {name: _interpolate(value, variables) for name, value in variables.items()}
    for service, prefix in APP_PREFIXES.items():
        assert resolved[f"{prefix}KAFKA_BOOTSTRAP_SERVERS"] == "localhost:9092", service
        assert "@localhost:5432/" in resolved[f"{prefix}DATABASE_URL"], service
        assert "${" not in resolved[f"{prefix}DATABASE_URL"], service
    assert resolved["NOTIFIER_SMTP_HOST"] == "localhost"


def test_env_example_comments_every_variable() -> None:
    comments = _env_example_comments()
    undocumented = sorted(name for name, comment in comments.items() if not comment.startswith("#"))
    assert not undocumented, f".env.example: no comment line above {undocumented}"


# ------------------------------------------------------------------------------------ settings classes


@pytest.mark.parametrize(("service", "prefix"), sorted(APP_PREFIXES.items()))
def test_compose_environment_matches_the_settings_class(service: str, prefix: str) -> None:
    settings_class = _settings_class(service)
    assert settings_class.model_config.get("env_prefix") == prefix
    fields = settings_class.model_fields
    known = {prefix + name.upper() for name in fields}
    env = _environment(_services()[service])

    unknown = sorted(set(env) - known)
    assert not unknown, f"{service}: compose sets {unknown}, which {settings_class.__name__} does not read"
    required = {prefix + name.upper() for name, field in fields.items() if field.is_required()}
    missing = sorted(required - set(env))
    assert not missing, f"{service}: {settings_class.__name__} requires {missing}, not set in compose.yaml"


@pytest.mark.parametrize(("service", "prefix"), sorted(APP_PREFIXES.items()))
def test_settings_class_accepts_the_compose_values(service: str, prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The values compose passes parse: what the container would see, /app/ mapped to the repository."""
    settings_class = _settings_class(service)
    secrets = {
        "POSTGRES_PASSWORD": "compose-test-password",
        "PREVEX_LINK_SECRETS": "compose-test-link-secret-0123456789",
    }
    for name in list(os.environ):
        if name.startswith(prefix):
            monkeypatch.delenv(name)
    for name, value in _environment(_services()[service]).items():
        rendered = _interpolate(value, secrets)
        if rendered.startswith("/app/"):
            rendered = str(ROOT / rendered.removeprefix("/app/"))
        monkeypatch.setenv(name, rendered)
    settings_class(_env_file=None)


# -------------------------------------------------------------------------------- Dockerfile, ignore


def test_dockerfile_builds_a_non_root_image_of_the_package() -> None:
    instructions = _dockerfile_instructions()
    keywords = [keyword for keyword, _ in instructions]
    assert instructions[0] == ("FROM", "python:3.11-slim")
    assert keywords.count("FROM") == 1
    assert ("WORKDIR", "/app") in instructions

    runs = [arguments for keyword, arguments in instructions if keyword == "RUN"]
    assert any(re.search(r"\bpip install --no-cache-dir \.(\s|$)", run) for run in runs)

    users = [arguments for keyword, arguments in instructions if keyword == "USER"]
    assert users, "the image must switch to a non-root user"
    final_user = users[-1].split(":", 1)[0]
    assert final_user not in {"root", "0"}
    assert keywords.index("USER") > max(index for index, keyword in enumerate(keywords) if keyword == "RUN")

    for keyword, arguments in instructions:
        if keyword in {"ENV", "ARG", "CMD", "ENTRYPOINT"}:
            assert not _SECRET_NAME.search(arguments), f"{keyword} {arguments}: no secret in the image"


def test_dockerfile_copies_the_package_sources() -> None:
    sources: list[str] = []
    for keyword, arguments in _dockerfile_instructions():
        if keyword == "COPY":
            argv = [arg for arg in shlex.split(arguments) if not arg.startswith("--")]
            sources.extend(source.rstrip("/") for source in argv[:-1])
    assert set(sources) == {"schemas", "services", "deploy", "pyproject.toml", "README.md"}

    ignored = {
        line.strip().strip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for source in sources:
        assert source not in ignored, f"{source} is copied but excluded by .dockerignore"
        assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which is not in the repository"


def test_dockerignore_excludes_local_state() -> None:
    ignored = {line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines() if line.strip()}
    for entry in (".venv", "var", ".git", "tests", "**/__pycache__", ".env"):
        assert entry in ignored, f".dockerignore must exclude {entry}"
