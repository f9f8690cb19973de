"""The dashboard in Debian's Chromium, driven by Playwright: sign in, open a chain, its development
deployment and its patch history, then its environment, change a chainlet's instance type, and
watch the new deployment get promoted without a reload; and see a chain's async queue depth per
deployment follow requests enqueued, taken and canceled meanwhile. Screenshots of each step go to
the test run's artifacts (see conftest.py)."""

from __future__ import annotations

import hashlib
import io
import os
import pathlib
import re
import shutil
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chainyard.domain import async_requests as d
from chainyard.sdk import Client
from chainyard.services import async_queue, async_requests
from chainyard.services.context import Actor

# Every table known, so that the queue's foreign keys resolve in this process too.
from chainyard.store import models  # noqa: F401
from chainyard.store.chains import Chain
from chainyard.store.db import Database, sqlite_url
from tests.dashboard.conftest import KEY, Server
from tests.support.server import hello_manifest

CHROMIUM = pathlib.Path("/usr/bin/chromium")

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists() and not shutil.which("chromium"),
        reason="Debian's chromium is not installed (`make install` installs it)",
    ),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = str(CHROMIUM) if CHROMIUM.exists() else shutil.which("chromium")
    # Chromium's sandbox cannot start as root (as in CI containers); /dev/shm is small there.
    args = ["--disable-dev-shm-usage"]
    if os.geteuid() == 0:
        args.append("--no-sandbox")
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=executable, headless=True, args=args)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(20_000)
    yield opened
    context.close()


def _collect_problems(page: Any) -> list[str]:
    """Uncaught errors and console errors of the page; a refused request (the wrong key at sign
    in) is logged by Chromium as a console error and is expected."""
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))

    def console(message: Any) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(f"console: {message.text}")

    page.on("console", console)
    return problems


def _deployed_chain(server: Server) -> tuple[str, str, str]:
    name = f"dash-{uuid.uuid4().hex[:6]}"
    with server.client() as client:
        response = client.post("/v1/chains/deploy", json=hello_manifest(chain_name=name))
        assert response.status_code == 200, response.text
        body = response.json()
    chain_id, dep_id = body["chain_id"], body["chain_deployment"]["id"]
    _wait_current(server, chain_id, dep_id)
    return name, chain_id, dep_id


def _tgz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path, content in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


# A file name that is markup: the page must show it as text.
MARKUP_PATH = "notes/<b>bold</b> & more.txt"


def _development(client: Client, name: str) -> tuple[str, str]:
    """(deployment id, digest of its source) of the chain's new development deployment."""
    manifest = {**hello_manifest(chain_name=name, environment=None), "source_file": "chain.py"}
    source = _tgz({"chain.py": b"v1\n"})
    pushed = client.development.push(manifest, source=source)
    assert pushed.chain_deployment.is_development
    return pushed.chain_deployment.id, hashlib.sha256(source).hexdigest()


def _check_patch_history(
    page: Any, client: Client, chain_id: str, base: str, shot: Callable[[str], None]
) -> None:
    """On the development deployment's page: no patches yet; then three, made while the page is
    open, appear newest first with their statuses, paths and messages."""
    expect = playwright_api.expect
    history = page.get_by_test_id("patch-history")
    expect(history).to_be_visible()
    expect(history.get_by_test_id("patches")).to_contain_text(
        "No patches yet: chainyard push --watch patches this deployment on every save."
    )
    shot("development-deployment")

    first = client.development.patch(
        chain_id, base_digest=base, files=_tgz({"chain.py": b"v2\n", MARKUP_PATH: b"x"})
    )
    # On top of the first while it may still apply (then it supersedes it), then the same tree
    # again: nothing to do.
    second = client.development.patch(
        chain_id,
        base_digest=first.artifact_digest,
        files=_tgz({"chain.py": b"v3\n"}),
        deleted=[MARKUP_PATH],
    )
    third = client.development.patch(
        chain_id, base_digest=second.artifact_digest, files=_tgz({"chain.py": b"v3\n"})
    )
    assert third.status == "SKIPPED"
    rows = history.get_by_test_id("patch-row")
    expect(rows).to_have_count(3, timeout=15_000)
    expect(rows.nth(0)).to_have_attribute("data-revision", "3")
    row = {r: history.locator(f"[data-testid=patch-row][data-revision='{r}']") for r in (1, 2, 3)}
    # Followed by the page's refresh until the reconciler is done with it.
    status = "patch-status"
    expect(row[2].get_by_test_id(status)).to_have_text("SUCCEEDED", timeout=30_000)
    expect(row[3].get_by_test_id(status)).to_have_text("SKIPPED")
    expect(row[2].get_by_test_id("patch-duration")).to_have_text(
        re.compile(r"^\d+ ms$|^\d+\.\d\d s$")
    )
    done = {p.revision: p for p in client.development.patches(chain_id)}
    # The first either finished before the second came, or was superseded by it.
    assert done[1].status in ("SUCCEEDED", "FAILED"), done[1]
    expect(row[1].get_by_test_id(status)).to_have_text(done[1].status)
    messages = history.get_by_test_id("patch-message")
    expect(messages.first).to_contain_text("nothing changed")
    if done[1].status == "FAILED":
        expect(messages.last).to_have_text("superseded by revision 2")
    expect(row[1]).to_contain_text("HelloWorld, RandInt")
    expect(row[1].get_by_test_id("patch-changed")).to_have_text(f"chain.py, {MARKUP_PATH}")
    expect(row[2].get_by_test_id("patch-deleted")).to_have_text(MARKUP_PATH)
    expect(history.locator("b")).to_have_count(0)  # the path's markup stayed text
    shot("patch-history")


def _wait_current(server: Server, chain_id: str, dep_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    with server.client() as client:
        while True:
            env: dict[str, Any] = client.get(
                f"/v1/chains/{chain_id}/environments/production"
            ).json()
            current = env["current_deployment"]
            if current and current["id"] == dep_id and current["status"] == "ACTIVE":
                return env
            assert time.monotonic() < deadline, f"{dep_id} never served production: {env}"
            time.sleep(0.1)


def test_change_an_instance_type_and_watch_the_promotion(
    page: Any, server: Server, artifacts: pathlib.Path
) -> None:
    name, chain_id, first = _deployed_chain(server)
    sdk = Client(server.url, KEY, timeout=60)
    development, base = _development(sdk, name)
    problems = _collect_problems(page)
    expect = playwright_api.expect
    step = iter(range(1, 100))

    def shot(label: str) -> None:
        page.screenshot(path=str(artifacts / f"{next(step):02d}-{label}.png"), full_page=True)

    try:
        page.goto(server.url + "/")
        expect(page.get_by_test_id("api-key")).to_be_visible()
        expect(page.get_by_test_id("sign-out")).to_be_hidden()
        page.get_by_test_id("api-key").fill("wrong1.not-a-key-at-all-0000000000")
        page.get_by_test_id("sign-in").click()
        expect(page.get_by_test_id("signin-error")).to_contain_text("not accepted")
        shot("sign-in-refused")

        page.get_by_test_id("api-key").fill(KEY)
        page.get_by_test_id("sign-in").click()
        row = page.locator(f"[data-testid=chain-row][data-chain-id='{chain_id}']")
        expect(row).to_contain_text(name)
        expect(page.locator("#who")).to_contain_text(KEY.partition(".")[0])
        shot("chains")

        row.get_by_test_id("chain-link").click()
        expect(page.get_by_test_id("chain-name")).to_have_text(name)
        env_row = page.locator("[data-testid=environment-row][data-environment='production']")
        expect(env_row).to_contain_text(first)
        # The development deployment is badged as such in the list; the published one is not.
        rows = "[data-testid=deployment-row][data-deployment-id='{}']"
        badge = "development-badge"
        expect(page.locator(rows.format(development)).get_by_test_id(badge)).to_be_visible()
        expect(page.locator(rows.format(first)).get_by_test_id(badge)).to_have_count(0)
        shot("chain")

        page.locator(rows.format(development)).get_by_role("link").click()
        expect(page.get_by_test_id("deployment-status")).to_be_visible()
        expect(page.locator("h1").get_by_test_id(badge)).to_be_visible()
        _check_patch_history(page, sdk, chain_id, base, shot)
        page.locator("#crumbs").get_by_role("link", name=name).click()

        env_row.get_by_test_id("environment-link").click()
        expect(page.get_by_test_id("current-deployment-id")).to_have_text(first)
        randint = page.locator("[data-testid=env-chainlet-row][data-chainlet='RandInt']")
        expect(randint.get_by_test_id("chainlet-instance-type")).to_have_text("1x2")
        expect(randint.get_by_test_id("chainlet-replicas")).to_have_text("1/1")
        expect(page.get_by_test_id("chainlet-chart")).to_have_count(2)
        shot("environment")
        # Survives only if the page is never reloaded from here on.
        page.evaluate("window.__sameDocument = true")

        randint.get_by_test_id("change-instance-type").click()
        dialog = page.get_by_test_id("instance-type-dialog")
        dialog.get_by_test_id("instance-type-select").select_option("2x8")
        shot("instance-type-dialog")
        dialog.get_by_test_id("dialog-ok").click()

        confirm = page.get_by_test_id("confirm-instance-type")
        expect(confirm).to_contain_text("RandInt moves from 1x2 to 2x8")
        expect(confirm).to_contain_text(
            "A new deployment will be created and promoted into production"
        )
        shot("confirmation")
        confirm.get_by_test_id("dialog-ok").click()

        banner = page.get_by_test_id("promotion-banner")
        expect(banner).to_be_visible()
        shot("promotion-started")
        second = banner.get_attribute("data-deployment-id")
        assert second and second != first

        expect(banner).to_have_attribute("data-state", "promoted", timeout=30_000)
        expect(banner).to_contain_text(f"It replaced {first}")
        expect(page.get_by_test_id("current-deployment-id")).to_have_text(second)
        expect(page.get_by_test_id("current-deployment-status")).to_have_text("ACTIVE")
        expect(randint.get_by_test_id("chainlet-instance-type")).to_have_text("2x8")
        expect(randint.get_by_test_id("chainlet-replicas")).to_have_text("1/1")
        expect(page.get_by_test_id("candidate-deployment")).to_contain_text("No promotion running")
        assert page.evaluate("window.__sameDocument === true"), "the page was reloaded"
        shot("promoted")

        # Autoscaling changes apply to the running deployment: no new deployment, no promotion.
        hello = page.locator("[data-testid=env-chainlet-row][data-chainlet='HelloWorld']")
        hello.get_by_test_id("change-autoscaling").click()
        page.get_by_test_id("autoscaling-max_replica").fill("3")
        page.get_by_test_id("autoscaling-dialog").get_by_test_id("dialog-ok").click()
        confirm = page.get_by_test_id("confirm-autoscaling")
        expect(confirm).to_contain_text("max_replica 1 → 3")
        expect(confirm).to_contain_text("no new deployment is created")
        shot("autoscaling-confirmation")
        confirm.get_by_test_id("dialog-ok").click()
        expect(page.get_by_test_id("flash")).to_have_text("Autoscaling of HelloWorld updated.")
        expect(hello).to_contain_text("0\u20133")  # "0-3" with an en dash: min to max replicas
        expect(page.get_by_test_id("current-deployment-id")).to_have_text(second)

        # The API agrees with what the page shows.
        env = _wait_current(server, chain_id, second)
        settings = {s["chainlet_name"]: s for s in env["chainlet_settings"]}
        assert settings["RandInt"]["instance_type"]["id"] == "2x8"
        assert settings["HelloWorld"]["autoscaling_settings"]["max_replica"] == 3
        running = {c["name"]: c for c in env["current_deployment"]["chainlets"]}
        assert running["RandInt"]["instance_type_name"] == "2 vCPU, 8 GiB"

        page.get_by_test_id("current-deployment-id").click()
        expect(page.get_by_test_id("deployment-status")).to_have_text("ACTIVE")
        chainlet = page.locator("[data-testid=chainlet-row][data-chainlet='RandInt']")
        expect(chainlet).to_contain_text("2 vCPU, 8 GiB")
        expect(page.get_by_test_id("patch-history")).to_be_hidden()  # a published deployment
        shot("deployment")

        chainlet.get_by_test_id("logs-link").click()
        expect(page.get_by_test_id("logs")).to_contain_text("built RandInt (simulated)")
        shot("chainlet-logs")

        page.get_by_test_id("sign-out").click()
        expect(page.get_by_test_id("api-key")).to_be_visible()
        assert page.evaluate("sessionStorage.length") == 0
        shot("signed-out")
        assert problems == []
    except BaseException:
        page.screenshot(path=str(artifacts / "failure.png"), full_page=True)
        print(f"browser: {problems}\nserver log:\n{server.log_tail()}")
        raise
    finally:
        sdk.close()


def _server_store(server: Server) -> Database:
    """The server's own database (the store it was started with), for putting requests in the
    queue as the routes would."""
    return Database(os.environ.get("CHAINYARD_DATABASE_URL") or sqlite_url(server.data_dir))


def test_the_async_queue_of_each_deployment(
    page: Any, server: Server, artifacts: pathlib.Path
) -> None:
    name, chain_id, current = _deployed_chain(server)
    with server.client() as client:
        response = client.post(
            "/v1/chains/deploy", json=hello_manifest(chain_name=name, environment=None)
        )
        assert response.status_code == 200, response.text
        other = response.json()["chain_deployment"]["id"]
    db = _server_store(server)
    with db.read() as session:
        chain = session.get(Chain, chain_id)
        assert chain is not None
        actor = Actor(chain.workspace_id, "default", key_type="WORKSPACE_MANAGE_ALL")
    problems = _collect_problems(page)
    expect = playwright_api.expect
    step = iter(range(1, 100))

    def shot(label: str) -> None:
        page.screenshot(path=str(artifacts / f"async-{next(step):02d}-{label}.png"), full_page=True)

    def enqueue() -> str:
        answer = async_requests.enqueue(
            db,
            actor,
            chain_id=chain_id,
            deployment_id=current,
            target=d.AsyncTarget(d.ENVIRONMENT, "production"),
            spec=d.check({"model_input": {}}),
        )
        return answer.request_id

    try:
        page.goto(server.url + "/")
        page.get_by_test_id("api-key").fill(KEY)
        page.get_by_test_id("sign-in").click()
        page.locator(f"[data-testid=chain-row][data-chain-id='{chain_id}']").get_by_test_id(
            "chain-link"
        ).click()
        rows = "[data-testid=deployment-row][data-deployment-id='{}']"
        depth = {
            dep: page.locator(rows.format(dep)).get_by_test_id("async-queue")
            for dep in (current, other)
        }
        # An empty queue is a quiet "0 queued".
        for dep in (current, other):
            expect(depth[dep]).to_have_text("0 queued")
            expect(depth[dep]).to_have_class(re.compile(r"\bmuted\b"))
        shot("chain-empty")
        page.evaluate("window.__sameDocument = true")

        ids = [enqueue() for _ in range(3)]
        # Held by this test for the whole test, as a runner would hold a running request.
        [taken] = async_queue.claim(db, "dashboard-test", limit=1, lease_seconds=3600)
        assert taken.request_id == ids[0]
        expect(depth[current]).to_have_text("2 queued, 1 in progress")
        expect(depth[current]).to_have_attribute("data-queued", "2")
        expect(depth[current]).to_have_attribute("data-in-progress", "1")
        expect(depth[other]).to_have_text("0 queued")
        shot("chain-queued")

        page.locator(rows.format(current)).get_by_role("link").first.click()
        expect(page.get_by_test_id("deployment-status")).to_have_text("ACTIVE")
        mine = page.get_by_test_id("async-queue")
        expect(mine).to_have_text("2 queued, 1 in progress")
        expect(page.locator(".subtitle", has=mine)).to_have_text(
            "Async queue: 2 queued, 1 in progress"
        )
        shot("deployment-queued")
        assert async_requests.cancel(db, actor, ids[1]).canceled
        expect(mine).to_have_text("1 queued, 1 in progress")
        assert async_queue.record_result(db, "dashboard-test", ids[0], None).held
        assert async_requests.cancel(db, actor, ids[2]).canceled
        expect(mine).to_have_text("0 queued")
        shot("deployment-drained")
        assert page.evaluate("window.__sameDocument === true"), "the page was reloaded"
        assert problems == []
    except BaseException:
        page.screenshot(path=str(artifacts / "async-failure.png"), full_page=True)
        print(f"browser: {problems}\nserver log:\n{server.log_tail()}")
        raise
    finally:
        db.dispose()
