"""The four services as processes on a broker, a database and an SMTP sink of their own, S-01 and S-04 sent
the way their commissaire de justice sends them, and a way to reach the workspace's pages.

Reusable (the browser tests may build on it): ``workspace_stack`` (module scope, on the module's own broker
and database) yields a
``WorkspaceStack``: ``url`` of the workspace, ``alert_link(recipient, ref)`` the link of the alert the SMTP sink
received, ``database_url`` to look at what orientation applied, ``assignment(ref, structure_id)`` once the workspace
knows it, ``services`` to read logs.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage

import asyncpg
import httpx
import pytest

from devtools import BrokerEndpoint, SmtpSink, create_topics
from devtools.demo import DEMO_INPUTS, publish_demo, wait_for_http
from devtools.stack import ServiceProcesses, StackConfig
from schemas import topics

S01, S04 = DEMO_INPUTS[0], DEMO_INPUTS[3]
LINK = re.compile(r"http://127\.0\.0\.1:\d+/d/[A-Za-z0-9_-]{20}")


@dataclass
class WorkspaceStack:
    url: str
    database_url: str
    smtp: SmtpSink
    services: ServiceProcesses

    def alert_link(self, recipient: str, ref: str) -> str:
        """The « Ouvrir le dossier » link of the alert ``recipient`` received about ``ref``."""
        for mail in self.smtp.messages:
            message = mail.message
            assert isinstance(message, EmailMessage)
            if recipient in mail.rcpt_tos and f"Dossier {ref}" in str(message["Subject"]):
                body = message.get_body(("plain",))
                assert body is not None
                found = LINK.search(body.get_content())
                assert found is not None, f"no workspace link in {recipient}'s alert about {ref}"
                return found.group(0)
        raise AssertionError(f"{recipient} received no alert about {ref}")

    async def assignment(self, ref: str, structure_id: str, timeout_s: float = 60) -> asyncpg.Record:
        """``structure_id``'s assignment on ``ref`` (``assignment_id``, ``procedure_id``) once the workspace's
        read model holds it: the alerts the stack waited for come from the notifier, and the workspace reads
        the same decision on a consumer of its own, maybe a moment later."""
        conn = await asyncpg.connect(self.database_url)
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    row = await conn.fetchrow(
                        "SELECT a.assignment_id, a.procedure_id FROM workspace.assignment a"
                        " JOIN workspace.procedure p USING (procedure_id)"
                        " WHERE p.short_ref = $1 AND a.structure_id = $2",
                        ref,
                        structure_id,
                    )
                    if row is not None:
                        return row
                    await asyncio.sleep(0.2)
        finally:
            await conn.close()

    async def open(self, client: httpx.AsyncClient, link: str, timeout_s: float = 60) -> httpx.Response:
        """Open ``link`` until the workspace knows its assignment (its consumer may still be reading the
        decision the alert came from): a state to wait for, not a duration."""
        async with asyncio.timeout(timeout_s):
            while True:
                answer = await client.get(link)
                if answer.status_code != 403:
                    return answer
                await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
async def workspace_stack(
    own_broker: BrokerEndpoint, own_database: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[WorkspaceStack]:
    with SmtpSink(tmp_path_factory.mktemp("workspace-mail")) as smtp:
        await create_topics(own_broker.bootstrap_servers, topics.ALL_TOPICS)
        config = StackConfig(
            own_broker.bootstrap_servers, own_database, smtp.host, smtp.port, tmp_path_factory.mktemp("workspace-sms")
        )
        services = ServiceProcesses(config, tmp_path_factory.mktemp("workspace-logs"))
        services.start()
        try:
            ingest_url = f"http://127.0.0.1:{config.ingest_http_port}"
            await wait_for_http(ingest_url)
            await wait_for_http(services.workspace_url)
            await publish_demo(own_broker.bootstrap_servers, ingest_url, (S01, S04))
            await smtp.wait_for(S01.emails + S04.emails, timeout=90)
            yield WorkspaceStack(services.workspace_url, own_database, smtp, services)
        finally:
            services.stop()
