"""Browser tests: what a partner sees, rendered by a real headless Chromium and checked with axe-core.

Chromium is Debian's package (``/usr/bin/chromium``, installed by ``make browser-deps``, which ``make test``
runs), driven by Playwright from PyPI through ``executable_path``: Playwright's own browser download is never
used. Without Chromium these tests fail under ``CI=true`` and are skipped elsewhere, saying how to install it.

Fixtures:

- ``browser`` (session): one Chromium for the whole run.
- ``page`` / ``phone_page``: a fresh French-locale context per test, desktop (1280×900) or phone (390×844).
  Any request to a host other than this machine is refused and fails the test at teardown (no CDN, no
  tracker), and so does an uncaught script error.
- ``axe``: ``await axe(page, "what")`` runs axe-core in the page and fails listing every serious or critical
  violation (rule, impact, help, elements).
- ``fits_screen``: ``await fits_screen(page, "what")`` fails when the page scrolls sideways, naming the
  elements that stick out (on a phone, text must wrap and wide tables scroll inside their own box).
- ``screenshot``: ``await screenshot(page, "name")`` writes ``var/screenshots/<name>.png`` (full page) for a
  person to look at, and returns its path.
- ``stack`` (package): the services as real processes on a broker, a database and an SMTP sink of their own,
  so that these tests and ``tests/e2e`` (same consumer groups) never share a broker or a database.
- ``alerts`` (package): S-01 (Belfort) and S-04 (Valdoie) sent the way their commissaire de justice sends
  them, S-05 (Giromagny, no matching offer) as its administrateur de biens' CSV export, and the emails they
  caused, read from the ``.eml`` files the SMTP sink stored.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import pytest
from axe_playwright_python.async_playwright import Axe  # type: ignore[import-untyped]
from playwright.async_api import Browser, BrowserContext, Page, Route, ViewportSize, async_playwright

from devtools import PostgresEndpoint, SmtpSink, create_database, create_topics, drop_database, kafka_broker
from devtools.demo import DEMO_INPUTS, DemoInput, publish_demo, wait_for_http
from devtools.stack import ServiceProcesses, StackConfig
from schemas.topics import ALL_TOPICS
from services.orientation.auth import hash_token, new_token

_ROOT: Final = Path(__file__).resolve().parents[2]
CHROMIUM: Final = Path("/usr/bin/chromium")
SCREENSHOTS: Final = _ROOT / "var" / "screenshots"
# Root needs --no-sandbox. The network is closed: the rest stop Chromium from calling Google hosts
# (component updates, sync, field trials, QUIC probes) at start and while idle.
CHROMIUM_ARGS: Final = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)
DESKTOP: Final = ViewportSize(width=1280, height=900)
PHONE: Final = ViewportSize(width=390, height=844)
_LOCAL_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
_BLOCKING_IMPACTS: Final = frozenset({"serious", "critical"})
# S-01 (commandement de payer, Belfort: CCAS-BELFORT, CDAD90, CD90) and S-04 (assignation, Valdoie: CD90,
# CDAD90, FSL90): two cases that share some structures and not others; S-05: no offer matches, the CCAPEX
# secretariat is asked to orient it by hand.
ALERTED_INPUTS: Final = tuple(
    item for item in DEMO_INPUTS if item.scenario.startswith(("S-01 commandement", "S-04 assignation", "S-05"))
)
# A plain-text line that carries a link: "<what it opens> : <address>".
_LINK_LINE: Final = re.compile(r"^(?P<label>.+?) : (?P<url>https?://\S+)$")

AxeCheck = Callable[[Page, str], Awaitable[None]]
FitCheck = Callable[[Page, str], Awaitable[None]]
Screenshot = Callable[[Page, str], Awaitable[Path]]


@pytest.fixture(scope="package")
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless; missing, it fails the run in CI and skips these tests elsewhere."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: `make browser-deps` installs Debian's chromium (as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests cannot run in CI: {reason}")
        pytest.skip(reason)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            yield chromium
        finally:
            await chromium.close()


class _Guard:
    """What a page did that it must not: reach another host, or throw a script error."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    async def attach(self, context: BrowserContext) -> None:
        await context.route("**/*", self._route)
        context.on("weberror", lambda error: self.problems.append(f"script error: {error.error}"))

    async def _route(self, route: Route) -> None:
        url = route.request.url
        host = urlsplit(url).hostname or ""
        if url.startswith(("data:", "about:", "blob:")) or host in _LOCAL_HOSTS:
            await route.continue_()
            return
        self.problems.append(f"request to another host refused: {url}")
        await route.abort("blockedbyclient")


@asynccontextmanager
async def _page(browser: Browser, viewport: ViewportSize, *, mobile: bool) -> AsyncIterator[Page]:
    context = await browser.new_context(
        viewport=viewport, locale="fr-FR", timezone_id="Europe/Paris", is_mobile=mobile, has_touch=mobile
    )
    guard = _Guard()
    await guard.attach(context)
    try:
        yield await context.new_page()
    finally:
        await context.close()
    assert not guard.problems, "\n".join(guard.problems)


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A desktop page (1280×900) in a context of its own."""
    async with _page(browser, DESKTOP, mobile=False) as opened:
        yield opened


@pytest.fixture
async def phone_page(browser: Browser) -> AsyncIterator[Page]:
    """A phone page (390×844, touch) in a context of its own."""
    async with _page(browser, PHONE, mobile=True) as opened:
        yield opened


def _violation_lines(violations: list[dict[str, Any]]) -> list[str]:
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {', '.join(str(n['target']) for n in v['nodes'])}"
        for v in violations
        if v["impact"] in _BLOCKING_IMPACTS
    ]


@pytest.fixture(scope="session")
def axe() -> AxeCheck:
    """``await axe(page, what)``: fail listing the page's serious and critical axe-core violations."""
    runner = Axe()

    async def check(page: Page, what: str) -> None:
        results = await runner.run(page)
        lines = _violation_lines(results.response["violations"])
        assert not lines, f"accessibility of {what}: " + "\n".join(lines)

    return check


# The elements that stick out of the viewport when the page scrolls sideways (none otherwise), their right edge;
# those inside a box that scrolls or clips on its own (a wide table's wrapper) do not count.
_STICKING_OUT: Final = """() => {
  const width = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth <= width) return [];
  const scrolls = e => ["auto", "scroll", "hidden"].includes(getComputedStyle(e).overflowX);
  const clipped = e => {
    for (let a = e.parentElement; a; a = a.parentElement) if (scrolls(a)) return true;
    return false;
  };
  return [...document.querySelectorAll("body *")]
    .filter(e => e.getBoundingClientRect().right > width + 0.5 && !clipped(e))
    .slice(0, 10)
    .map(e => `${e.tagName.toLowerCase()}${e.id ? "#" + e.id : ""}: ${Math.round(e.getBoundingClientRect().right)} px`);
}"""


@pytest.fixture(scope="session")
def fits_screen() -> FitCheck:
    """``await fits_screen(page, what)``: fail when the page is wider than its viewport, naming what sticks out."""

    async def check(page: Page, what: str) -> None:
        sticking_out: list[str] = await page.evaluate(_STICKING_OUT)
        assert not sticking_out, f"{what} scrolls sideways: " + ", ".join(sticking_out)

    return check


@pytest.fixture(scope="session")
def screenshot() -> Screenshot:
    """``await screenshot(page, name)``: the whole page as ``var/screenshots/<name>.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    async def take(page: Page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        await page.screenshot(path=path, full_page=True)
        return path

    return take


@dataclass(frozen=True)
class BrowserStack:
    """The running services and what the tests read from or send to them."""

    config: StackConfig
    services: ServiceProcesses
    smtp: SmtpSink
    mail_dir: Path
    desk_token: str
    """The CCAPEX secretariat's sign-in token for the workspace desk (role ccapex-admin)."""

    async def send(self, *inputs: DemoInput) -> None:
        """Send demo inputs the way their emitters do (Kafka raw topic, HTTP intake, CSV)."""
        ingest_url = f"http://127.0.0.1:{self.config.ingest_http_port}"
        await wait_for_http(ingest_url)
        await publish_demo(self.config.bootstrap_servers, ingest_url, inputs)

    async def stored_emails(self, count: int, timeout_s: float = 120) -> list[Path]:
        """The ``.eml`` files of the SMTP sink, in arrival order, once there are at least ``count``."""
        await self.smtp.wait_for(count, timeout=timeout_s)
        # The sink records a message before it writes the file: wait for the file too.
        async with asyncio.timeout(10):
            while len(files := sorted(self.mail_dir.glob("*.eml"))) < count:  # noqa: ASYNC110 (files: no event)
                await asyncio.sleep(0.05)
        return files


@pytest.fixture(scope="package")
async def stack(pg_server: PostgresEndpoint, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[BrowserStack]:
    """Every service as a real process on a broker, a database and an SMTP sink of this package's own."""
    name = f"prevex_browser_{uuid.uuid4().hex[:10]}"
    database_url = await create_database(pg_server, name)
    mail_dir = tmp_path_factory.mktemp("browser-mail")
    try:
        with kafka_broker() as broker, SmtpSink(mail_dir) as smtp:
            await create_topics(broker.bootstrap_servers, ALL_TOPICS)
            config = StackConfig(
                broker.bootstrap_servers, database_url, smtp.host, smtp.port, tmp_path_factory.mktemp("browser-sms")
            )
            desk_token = new_token()
            desk_tokens = tmp_path_factory.mktemp("browser-desk") / "desk-tokens.yaml"
            desk_tokens.write_text(
                f"tokens:\n  - name: secretariat-ccapex\n    sha256: {hash_token(desk_token)}\n"
                "    roles: [ccapex-admin]\n",
                "utf-8",
            )
            # The workspace's own token for orientation's admin API: the desk edits the référentiel through it.
            workspace_token = new_token()
            admin_tokens = desk_tokens.with_name("orientation-tokens.yaml")
            admin_tokens.write_text(
                f"tokens:\n  - name: workspace-desk\n    sha256: {hash_token(workspace_token)}\n"
                "    roles: [ccapex-admin]\n",
                "utf-8",
            )
            token_file = desk_tokens.with_name("workspace-orientation.token")
            token_file.write_text(workspace_token, "utf-8")
            services = ServiceProcesses(
                config,
                tmp_path_factory.mktemp("browser-logs"),
                extra_env={
                    "WORKSPACE_DESK_TOKENS_PATH": str(desk_tokens),
                    "ORIENTATION_ADMIN_TOKENS_PATH": str(admin_tokens),
                    "WORKSPACE_ORIENTATION_URL": f"http://127.0.0.1:{config.orientation_http_port}",
                    "WORKSPACE_ORIENTATION_TOKEN_PATH": str(token_file),
                },
            )
            services.start()
            try:
                yield BrowserStack(config, services, smtp, mail_dir, desk_token)
            finally:
                services.stop()
    finally:
        await drop_database(pg_server, name)


@dataclass(frozen=True)
class StoredAlert:
    """One email as the SMTP sink stored it (a ``.eml`` file), read as a mail client reads it."""

    path: Path
    recipient: str
    subject: str
    text: str
    html: str

    @classmethod
    def read(cls, path: Path) -> StoredAlert:
        """Parse ``path``; fails when the email lacks its plain-text or its HTML part."""
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        plain, html = message.get_body(("plain",)), message.get_body(("html",))
        assert plain is not None, f"{path.name} has no plain-text part"
        assert html is not None, f"{path.name} has no HTML part"
        return cls(path, str(message["To"]), str(message["Subject"]), plain.get_content(), html.get_content())

    def text_links(self) -> dict[str, str]:
        """The plain-text part's links: what each opens (its label) → its address."""
        matches = (_LINK_LINE.match(line.strip()) for line in self.text.splitlines())
        return {match["label"]: match["url"] for match in matches if match}


@pytest.fixture(scope="package")
async def alerts(stack: BrowserStack) -> list[StoredAlert]:
    """The emails S-01, S-04 and S-05 caused, in arrival order; their references are 90-2026-000001, -000002
    and -000003."""
    expected: list[Path] = []
    # One input after the other's emails: the Kafka and HTTP intakes run side by side, and references are
    # numbered in the order ingest stores the acts.
    for item in ALERTED_INPUTS:
        await stack.send(item)
        expected = await stack.stored_emails(len(expected) + item.emails)
    return [StoredAlert.read(path) for path in expected]
