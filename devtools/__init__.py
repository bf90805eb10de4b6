"""Local infrastructure (Kafka broker, PostgreSQL, SMTP sink), resolved alike for ``make run`` and tests.

Development and test tooling, outside the ``services`` package on purpose: it is not in the wheel nor the
image (pyproject packages ``schemas*`` and ``services*`` only). ``make run`` and the tests import it from the
repository's root, as they do ``benchmarks``.

Each resolver prefers what the environment provides (env vars), then testcontainers when a Docker engine
answers, then a self-started local process; see ``kafka_broker()`` and ``postgres_server()``.
"""

from devtools.broker import BrokerEndpoint, create_topics, kafka_broker, tansu_binary
from devtools.docker import docker_available
from devtools.net import free_port, wait_for_port
from devtools.postgres import (
    LOCAL_SERVER_URL,
    PostgresEndpoint,
    create_database,
    drop_database,
    postgres_server,
    temporary_database,
)
from devtools.smtp import ReceivedMail, SmtpSink

__all__ = [
    "LOCAL_SERVER_URL",
    "BrokerEndpoint",
    "PostgresEndpoint",
    "ReceivedMail",
    "SmtpSink",
    "create_database",
    "create_topics",
    "docker_available",
    "drop_database",
    "free_port",
    "kafka_broker",
    "postgres_server",
    "tansu_binary",
    "temporary_database",
    "wait_for_port",
]
