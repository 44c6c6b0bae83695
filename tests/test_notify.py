"""Alerts through Apprise to real receivers on 127.0.0.1: SMTP (aiosmtpd) and webhooks."""

from __future__ import annotations

import email
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from aiosmtpd.controller import Controller

from tests.conftest import Site, help_article, write_targets

MONITOR = str(Path(sys.executable).with_name("monitor"))
TOKEN = "s3cr3tT0KENxyz987"


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = _free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


class Hooks:
    """An HTTP receiver for json:// and form:// that can refuse, then come back."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict]] = []
        self.arrived = 0  # requests that reached the handler, answered or not
        self.hang = False
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hooks.arrived += 1
                if hooks.hang:
                    time.sleep(60)
                kind = self.headers.get("Content-Type", "")
                payload = (
                    json.loads(raw)
                    if "json" in kind
                    else {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                )
                hooks.received.append((self.path, payload))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.port = _free_port()
        self.server: ThreadingHTTPServer | None = None
        self.handler = Handler

    def up(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self.handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    receiver = Hooks()
    yield receiver
    receiver.down()


def monitor(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MONITOR, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def guide_page(scope: str, *more: str) -> str:
    return help_article(
        "Is my data used for model training?",
        "Turn off Help improve Claude in Privacy Settings.",
        f"The setting applies to {scope} conversations.",
        *more,
    )


@pytest.fixture
def watched(site: Site, targets_dir: Path, tmp_path: Path) -> dict[str, str]:
    url = site.page("/training", guide_page("new and resumed"))
    write_targets(
        targets_dir,
        "Anthropic",
        [
            {
                "id": "claude-training",
                "url": url,
                "fetch": "http",
                "title": "Is my data used for model training?",
                "guide": "https://guides.example.org/claude",
                "watch": ["Help improve Claude"],
            }
        ],
        tags=["ai-training"],
    )
    return {"targets": str(targets_dir), "db": f"sqlite:///{tmp_path / 'm.db'}", "url": url}


def check(
    watched: dict[str, str], *notify: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    args = [
        "check-now",
        "--json",
        "--retry-delay",
        "0",
        "--targets",
        watched["targets"],
        "--db",
        watched["db"],
    ]
    for url in notify:
        args += ["--notify", url]
    return monitor(*args, env={"MONITOR_BASE_URL": "http://review.example.org", **(env or {})})


def test_a_change_arrives_by_email_and_webhook(
    site: Site, watched: dict, smtp, hooks: Hooks
) -> None:
    mailbox, port = smtp
    hooks.up()
    mail = f"mailto://127.0.0.1:{port}?from=monitor@example.org&to=maintainer@example.org"
    hook = f"json://127.0.0.1:{hooks.port}/alerts?token={TOKEN}"
    assert check(watched, mail, hook).returncode == 0
    site.page("/training", guide_page("new and future"))
    result = check(watched, mail, hook)
    change = json.loads(result.stdout)
    assert change["status"] == "changed" and change["severity"] in ("relevant", "critical")
    assert "alerts: 2 sent" in result.stderr

    [message] = mailbox.messages
    subject = str(email.header.make_header(email.header.decode_header(message["Subject"])))
    assert subject == f"[{change['severity']}] Anthropic · Is my data used for model training?"
    parts = {
        part.get_content_type(): part.get_payload(decode=True).decode()
        for part in message.walk()
        if not part.is_multipart()
    }
    html_part = parts["text/html"]
    assert ">resumed</del>" in html_part and ">future</ins>" in html_part
    assert "<strong>setting</strong>" in html_part  # an opt-out term, emphasised
    assert f"http://review.example.org/changes/{change['change_id']}" in parts["text/html"]
    assert "https://guides.example.org/claude" in parts["text/html"]
    assert "text/plain" in parts and f"monitor diff {change['change_id']}" in parts["text/plain"]

    [(path, payload)] = hooks.received
    assert path.startswith("/alerts")
    assert payload["title"] == subject
    assert "[-resumed-]" in payload["message"] and "{+future+}" in payload["message"]
    assert "*setting*" in payload["message"]
    assert f"monitor diff {change['change_id']}" in payload["message"]

    again = check(watched, mail, hook)  # nothing new: nothing sent again
    assert (
        "alerts: 0 sent" in again.stderr and len(mailbox.messages) == 1 and len(hooks.received) == 1
    )


def test_a_destination_that_was_down_gets_it_once_later(
    site: Site, watched: dict, hooks: Hooks
) -> None:
    hook = f"form://127.0.0.1:{hooks.port}/in?token={TOKEN}"
    check(watched, hook)
    site.page("/training", guide_page("new"))
    down = check(watched, hook)  # the receiver is not listening yet
    assert "1 failed" in down.stderr
    listing = monitor("deliveries", "--json", "--db", watched["db"])
    [row] = [json.loads(line) for line in listing.stdout.splitlines()]
    assert row["state"] == "failed" and row["attempts"] == 1 and TOKEN not in listing.stdout
    assert row["destination"] == f"form://127.0.0.1:{hooks.port}"
    from monitor.store import Store
    from monitor.store.models import DeliveryRow

    store = Store(watched["db"])
    with store.session() as session:  # skip the backoff wait
        session.query(DeliveryRow).update({"next_attempt_at": DeliveryRow.created_at})
    store.close()
    hooks.up()
    assert "alerts: 1 sent" in check(watched, hook).stderr
    assert len(hooks.received) == 1 and "new" in hooks.received[0][1]["message"]
    assert "alerts: 0 sent" in check(watched, hook).stderr
    assert len(hooks.received) == 1


def test_routing_by_severity_and_tags(
    site: Site, watched: dict, hooks: Hooks, tmp_path: Path
) -> None:
    hooks.up()
    config = tmp_path / "apprise.yaml"
    base = f"json://127.0.0.1:{hooks.port}"
    config.write_text(
        json.dumps(
            {
                "urls": [
                    {f"{base}/everything": [{"tag": "ai-training"}]},
                    {f"{base}/critical-only": [{"tag": "min-critical"}]},
                    {f"{base}/other-topic": [{"tag": "social-media"}]},
                    {f"{base}/minor-too": [{"tag": "min-minor"}]},
                ]
            }
        )
    )
    check(watched, str(config))
    site.page("/training", guide_page("new"))  # relevant (opt-out wording)
    check(watched, str(config))
    site.page("/training", guide_page("new", "Contact our friendly team."))  # minor
    check(watched, str(config))
    paths = sorted(path for path, _ in hooks.received)
    relevant_or_worse = ["/everything", "/minor-too"]
    assert paths == sorted([*relevant_or_worse, "/minor-too"])


def test_secrets_never_leave_the_process(
    site: Site, watched: dict, hooks: Hooks, tmp_path: Path
) -> None:
    hook = f"json://user:{TOKEN}@127.0.0.1:{hooks.port}/x?key={TOKEN}"
    env = {"MONITOR_LOG_FORMAT": "json"}
    outputs = [check(watched, hook, env=env)]
    site.page("/training", guide_page("new"))
    outputs.append(check(watched, hook, env=env))  # fails: the receiver is down
    outputs.append(monitor("-vv", "notify-test", "--notify", hook))
    outputs.append(monitor("deliveries", "--db", watched["db"]))
    outputs.append(
        monitor(
            "--log-format",
            "json",
            "-vv",
            "check-now",
            "--notify",
            hook,
            "--targets",
            watched["targets"],
            "--db",
            watched["db"],
        )
    )
    for output in outputs:
        assert TOKEN not in output.stdout and TOKEN not in output.stderr
    assert "failed" in outputs[2].stdout and f"json://127.0.0.1:{hooks.port}" in outputs[2].stdout
    database = Path(watched["db"].removeprefix("sqlite:///"))
    for path in database.parent.glob(database.name + "*"):
        assert TOKEN.encode() not in path.read_bytes()


def test_killed_while_sending_is_never_sent_twice(site: Site, watched: dict, hooks: Hooks) -> None:
    hooks.up()
    hook = f"json://127.0.0.1:{hooks.port}/slow"
    check(watched, hook)
    site.page("/training", guide_page("new"))
    hooks.hang = True  # the receiver takes the message and never answers
    process = subprocess.Popen(
        [
            MONITOR,
            "check-now",
            "--retry-delay",
            "0",
            "--targets",
            watched["targets"],
            "--db",
            watched["db"],
            "--notify",
            hook,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not hooks.arrived and time.monotonic() < deadline:
        time.sleep(0.02)
    assert hooks.arrived == 1
    process.send_signal(signal.SIGKILL)  # after sending, before recording it as sent
    process.wait()
    hooks.hang = False
    assert len(hooks.received) == 0  # still inside the receiver's handler
    result = check(watched, hook, env={"MONITOR_DELIVERY_LEASE": "0"})
    assert "1 uncertain" in result.stderr
    rows = [
        json.loads(line)
        for line in monitor("deliveries", "--json", "--db", watched["db"]).stdout.splitlines()
    ]
    assert [row["state"] for row in rows] == ["uncertain"]
    time.sleep(1)
    assert len(hooks.received) <= 1  # the hung request may complete; nothing is sent again
    assert "alerts: 0 sent" in check(watched, hook, env={"MONITOR_DELIVERY_LEASE": "0"}).stderr


def test_many_changes_to_one_destination_make_one_message(
    site: Site, targets_dir: Path, tmp_path: Path, hooks: Hooks
) -> None:
    hooks.up()
    pages = [
        {
            "id": f"p{n}",
            "fetch": "http",
            "title": f"Page {n}",
            "url": site.page(f"/p{n}", help_article(f"P{n}", "You can opt out of training.")),
        }
        for n in range(5)
    ]
    write_targets(targets_dir, "Many", pages)
    watched = {"targets": str(targets_dir), "db": f"sqlite:///{tmp_path / 'm.db'}"}
    hook = f"json://127.0.0.1:{hooks.port}/many"
    check(watched, hook)
    for n in range(5):
        site.page(f"/p{n}", help_article(f"P{n}", "You can no longer opt out of training."))
    assert "alerts: 5 sent" in check(watched, hook).stderr
    [(_, payload)] = hooks.received
    assert payload["title"].endswith("5 changes on 5 page(s)")
    assert all(f"Page {n}" in payload["message"] for n in range(5))


def test_notify_test_reports_each_destination(smtp, hooks: Hooks) -> None:
    mailbox, port = smtp
    hooks.up()
    result = monitor(
        "notify-test",
        "--notify",
        f"mailto://127.0.0.1:{port}?from=a@example.org&to=b@example.org",
        "--notify",
        f"json://127.0.0.1:{hooks.port}/t",
        "--notify",
        "json://127.0.0.1:9/refused",
    )
    assert result.returncode == 1
    assert f"ok      mailto://127.0.0.1:{port}" in result.stdout
    assert "failed  json://127.0.0.1:9" in result.stdout
    assert len(mailbox.messages) == 1 and len(hooks.received) == 1
    bad = monitor("notify-test", "--notify", "nonsense://whatever")
    assert bad.returncode == 2 and "not a notification URL" in bad.stderr


def test_labels_never_show_tokens() -> None:
    from monitor.notify.destinations import load_destinations

    urls = {
        "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#general": "TIiajkdnlazkcOXrIdevi7FQ",
        "tgram://123456789:abcdefg_hijklmnop/12315544/": "abcdefg_hijklmnop",
        f"mailtos://user:{TOKEN}@example.org?to=a@example.org": TOKEN,
        f"json://127.0.0.1:9/hook?secret={TOKEN}": TOKEN,
    }
    for destination, secret in zip(load_destinations(list(urls)), urls.values(), strict=True):
        assert secret.lower() not in destination.label.lower()
        assert (
            destination.scrub(f"error talking to {next(iter(urls))} with {secret}").count(secret)
            == 0
        )


def test_minor_changes_wait_for_the_daily_digest(
    site: Site, watched: dict, hooks: Hooks, tmp_path: Path
) -> None:
    from monitor.store import Store
    from monitor.store.models import DeliveryRow

    hooks.up()
    config = tmp_path / "apprise.yaml"
    config.write_text(
        json.dumps({"urls": [{f"json://127.0.0.1:{hooks.port}/digest": [{"tag": "digest"}]}]})
    )
    check(watched, str(config))
    site.page("/training", guide_page("new and resumed", "Contact our friendly team."))  # minor
    first = check(watched, str(config))
    assert json.loads(first.stdout)["severity"] == "minor" and "alerts: 0 sent" in first.stderr
    [row] = [
        json.loads(line)
        for line in monitor("deliveries", "--json", "--db", watched["db"]).stdout.splitlines()
    ]
    assert row["state"] == "pending" and row["next_attempt_at"].endswith("T00:00:00+00:00")
    site.page("/training", guide_page("new", "Contact our friendly team."))  # relevant: at once
    assert "alerts: 1 sent" in check(watched, str(config)).stderr
    store = Store(watched["db"])
    with store.session() as session:  # midnight came
        session.query(DeliveryRow).filter(DeliveryRow.state == "pending").update(
            {"next_attempt_at": DeliveryRow.created_at}
        )
    store.close()
    assert "alerts: 1 sent" in check(watched, str(config)).stderr
    assert len(hooks.received) == 2 and "[minor]" in hooks.received[1][1]["title"]
