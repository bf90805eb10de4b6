"""``make run``: the whole pipeline on local infrastructure, fed with demo data.

Starts (or reuses, per the environment) a broker, PostgreSQL and an SMTP sink writing ``.eml`` files,
runs the four services as processes, publishes the demo inputs, prints what arrived and a link that
opens one demo case in the workspace, and keeps running until Ctrl-C, which stops everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import time
from datetime import datetime
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from devtools.broker import create_topics, kafka_broker
from devtools.demo import DEMO_INPUTS, expected_alerts, publish_demo, wait_for_http
from devtools.postgres import PostgresEndpoint, create_database, drop_database, postgres_server
from devtools.smtp import ReceivedMail, SmtpSink
from devtools.stack import SERVICES, ServiceProcesses, StackConfig
from schemas.topics import ALL_TOPICS
from services.notifier.settings import NotifierSettings
from services.platform.settings import ServiceSettings

__all__ = ["main"]

DATABASE = "prevex_dev"
API_DOCS = ("ingest", "orientation")
"""The services whose HTTP API has an OpenAPI document, served as a page at ``/docs/api``."""
_WORKSPACE_LINK = re.compile(r"https?://\S+/d/[A-Za-z0-9_-]{20}")


def main(argv: list[str] | None = None) -> int:
    """Run the local pipeline; ``--once`` exits after the demo's alerts arrived (or the timeout)."""
    args = _parser().parse_args(argv)
    # SIGTERM, and SIGINT even when started in the background (where it is inherited ignored), unwind
    # the with-blocks below so every process this runner started is stopped.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("\nStopped: services, SMTP sink, database server and broker are shut down.")
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devtools.run", description=__doc__)
    parser.add_argument("--var-dir", type=Path, default=Path("var"), help="where mail, SMS and logs go")
    parser.add_argument("--once", action="store_true", help="exit once the demo alerts arrived")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the demo alerts")
    parser.add_argument("--database", default=DATABASE, help="database created (afresh) on the server")
    return parser


def _print_endpoints(urls: dict[str, str]) -> None:
    """Each service's metrics and health (``ops``) and its API pages (``docs``), docs/operations.md."""
    for name, url in urls.items():
        print(f"ops         {name:<12} {url}/metrics  {url}/health/ready  {url}/health/live")
    for name, url in urls.items():
        api = f"  {url}/docs/api" if name in API_DOCS else ""
        print(f"docs        {name:<12} {url}/docs/events{api}")


def _run(args: argparse.Namespace) -> int:
    var: Path = args.var_dir.resolve()
    mail_dir, sms_dir, log_dir = var / "mail", var / "sms", var / "log"
    # The services inherit PREVEX_CLOCK from this environment; read here first, a bad value stops the run
    # before anything starts.
    shared = ServiceSettings(_env_file=None)
    for folder in (mail_dir, sms_dir):
        # A fresh broker and database each run: last run's alerts would only confuse the count.
        for old in (*folder.glob("*.eml"), *folder.glob("*.txt")):
            old.unlink()
    with kafka_broker() as broker, postgres_server() as server, SmtpSink(mail_dir) as smtp:
        print(f"broker      {broker.bootstrap_servers} ({broker.kind})")
        print(f"postgresql  {server.kind}, database {args.database}")
        print(f"smtp sink   {smtp.host}:{smtp.port}, mail stored in {mail_dir}")
        database_url = asyncio.run(_fresh_database(server, args.database))
        asyncio.run(create_topics(broker.bootstrap_servers, ALL_TOPICS))
        config = StackConfig(broker.bootstrap_servers, database_url, smtp.host, smtp.port, sms_dir)
        services = ServiceProcesses(config, log_dir)
        services.start()
        print(f"services    {', '.join(SERVICES)} (logs in {log_dir})")
        print(f"workspace   {services.workspace_url} (the partners' pages the alerts link to)")
        _print_endpoints(services.http_urls)
        if shared.clock is not None:
            how = "frozen there" if shared.clock_frozen else "running from there"
            print(f"clock       {shared.clock.isoformat()}, {how} (PREVEX_CLOCK): urgency and reminders of that day")
        try:
            started = time.monotonic()
            ingest_url = f"http://127.0.0.1:{config.ingest_http_port}"
            asyncio.run(wait_for_http(ingest_url))
            for item, answer in asyncio.run(publish_demo(broker.bootstrap_servers, ingest_url)):
                print(f"  {item.scenario:<58} {answer}")
            emails, sms = expected_alerts()
            print(f"demo        {len(DEMO_INPUTS)} inputs sent, {emails} email(s) and {sms} SMS expected")
            mails = asyncio.run(smtp.wait_for(emails, timeout=args.timeout))
            print(f"delivered   {len(mails)} email(s) in {time.monotonic() - started:.1f} s:")
            for mail in mails:
                print(f"  → {', '.join(mail.rcpt_tos)}: {mail.message['Subject']}")
            if mails:
                recipient, link = asyncio.run(_case_link(mails[0], args.timeout))
                print(f"open a case {link}  (the link of {recipient}'s alert: paste it in a browser)")
                reference = re.search(r"Dossier (\S+)", str(mails[0].message["Subject"]))
                if reference is not None:  # the case's journey across the services (docs/operations.md)
                    ops_env = f"PREVEX_OPS_DATABASE_URL={_shown_url(database_url)}"
                    print(f"follow it   {ops_env} prevex-ops trace {reference[1]}")
            texts, held = asyncio.run(_wait_for_sms(sms_dir, database_url, sms, args.timeout))
            print(f"sms (log)   {len(texts)} in {sms_dir}")
            zone = NotifierSettings().zone  # the notifier's, which the stack leaves at its default
            for until in held:
                local = until.astimezone(zone).strftime("%Y-%m-%d %H:%M")
                print(f"sms held    1 until {local} {zone.key} (its contact's quiet hours)")
            print(f"read them:  ls {mail_dir}  (each .eml opens in any mail client)")
            if args.once:
                return 0
            print("running     Ctrl-C to stop everything", flush=True)
            while True:
                time.sleep(3600)
        finally:
            services.stop()
            asyncio.run(drop_database(server, args.database))


async def _wait_for_sms(
    folder: Path, database_url: str, count: int, timeout_s: float
) -> tuple[list[Path], list[datetime]]:
    """The ``.txt`` files of the ``log`` SMS provider and the instants the SMS held back will go at, once
    they add up to ``count`` (or the timeout).

    A contact's quiet hours (the demo's SMS partner has 20:00–08:00) hold a non-critical SMS until they end:
    at night the demo's SMS is scheduled, not sent, and the notifier's own delivery rows say until when
    (read here, a development tool's report, as an operator would query them).
    """
    deadline = time.monotonic() + timeout_s
    conn = await asyncpg.connect(database_url)
    try:
        while True:
            files = sorted(await asyncio.to_thread(lambda: list(folder.glob("*.txt"))))
            held: list[datetime] = [
                row["next_attempt_at"]
                for row in await conn.fetch(
                    # Scheduled for later, never tried: held by quiet hours (a retry would have attempts).
                    "SELECT next_attempt_at FROM notifier.delivery WHERE channel = 'SMS' AND state = 'pending'"
                    " AND attempts = 0 AND next_attempt_at > now() ORDER BY next_attempt_at"
                )
            ]
            if len(files) + len(held) >= count or time.monotonic() >= deadline:
                return files, held
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


async def _case_link(mail: ReceivedMail, timeout_s: float) -> tuple[str, str]:
    """The recipient and the workspace link of ``mail``, once the link opens a session (the workspace may
    still be reading the decision the alert came from)."""
    text = "\n".join(p.get_content() for p in mail.message.walk() if p.get_content_type() == "text/plain")
    found = _WORKSPACE_LINK.search(text)
    if found is None:
        raise RuntimeError(f"no workspace link in the alert to {mail.rcpt_tos[0]}")
    async with httpx.AsyncClient(timeout=5) as client, asyncio.timeout(timeout_s):
        while True:
            if (await client.get(found.group(0))).status_code == HTTPStatus.SEE_OTHER:
                return mail.rcpt_tos[0], found.group(0)
            await asyncio.sleep(0.2)


def _shown_url(url: str) -> str:
    # A DATABASE_URL given by the user may hold a password: never printed.
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)))


async def _fresh_database(server: PostgresEndpoint, name: str) -> str:
    """An empty database: the broker starts empty too, so old rows would only confuse the demo."""
    await drop_database(server, name)
    return await create_database(server, name)


if __name__ == "__main__":
    raise SystemExit(main())
