"""The commands an operator types, as subprocesses, against a fresh data directory.

No Redis URL is given: each command starts (or attaches to) the embedded server of its
data directory, exactly as on a machine with no Redis installed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from worker.publish.schema import validate_message

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "seeds" / "000_fef04045498fa26b.txt"


def command_env(data_dir: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWIRE_")}
    env["NEWSWIRE_DATA_DIR"] = str(data_dir)
    env["NEWSWIRE_LOG_LEVEL"] = "WARNING"
    env.update({f"NEWSWIRE_{name.upper()}": value for name, value in settings.items()})
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def newswire(data_dir: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        cwd=ROOT,
        env=command_env(data_dir),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def token_f1(a: str, b: str) -> float:
    ta, tb = Counter(re.findall(r"\w+", a)), Counter(re.findall(r"\w+", b))
    overlap = sum((ta & tb).values())
    if not overlap:
        return 0.0
    p, r = overlap / sum(ta.values()), overlap / sum(tb.values())
    return 2 * p * r / (p + r)


def consumed(data_dir: Path) -> list[dict[str, object]]:
    result = newswire(data_dir, "consume", "--json", "--no-wait")
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_replay_twice_publishes_once(tmp_path: Path) -> None:
    first = newswire(tmp_path, "replay", "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["published"] == 1
    second = newswire(tmp_path, "replay", "--json")
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout)
    assert (summary["published"], summary["duplicates"]) == (0, 1)
    # Served under another name (as for workers in other containers): another URL, the
    # same text, so an exact duplicate again.
    third = newswire(
        tmp_path, "replay", "--json", "--listen", "127.0.0.1", "--advertise", "localhost"
    )
    assert third.returncode == 0, third.stderr
    summary = json.loads(third.stdout)
    assert (summary["published"], summary["duplicates"]) == (0, 1)
    assert summary["entries"][0]["url"].startswith("http://localhost:")
    [article] = consumed(tmp_path)
    validate_message(article)
    assert token_f1(str(article["text"]), SEED.read_text()) >= 0.95


def test_run_ingests_the_seed_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", "run"],
        cwd=ROOT,
        env=command_env(tmp_path, metrics_port=str(port)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        articles: list[dict[str, object]] = []
        while time.monotonic() < deadline and not articles:
            time.sleep(1)
            if (tmp_path / "redis.json").exists():
                articles = consumed(tmp_path)  # attaches to the running service's server
        assert articles, "the seed was not ingested within 90 s"
        validate_message(articles[0])
        status = newswire(tmp_path, "status", "--json")
        report = json.loads(status.stdout)
        assert {"worker-io", "worker-cpu", "scheduler"} <= {
            p.split(":")[0] for p in report["processes"]
        }
        assert report["latency"]["entries"] == 1  # the seed, from its claim to the stream
        assert "1 entry from claim to stream" in newswire(tmp_path, "status").stdout
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            served = reply.read().decode()
        assert 'newswire_entries_total{outcome="published"} 1.0' in served
        printed = newswire(tmp_path, "metrics")
        assert 'newswire_entries_total{outcome="published"} 1.0' in printed.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert not (tmp_path / "redis.json").exists()  # the embedded server stopped with the service
    # What run published survives the restart (AOF), read by a command on its own.
    assert [a["id"] for a in consumed(tmp_path)] == [articles[0]["id"]]


def test_run_refuses_a_taken_metrics_port_and_leaves_nothing_running(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "worker", "run"],
            cwd=ROOT, env=command_env(tmp_path, metrics_port=str(port)),
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 1
    assert f"cannot serve metrics on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "redis.json").exists()  # the embedded server stopped too


def test_extract_command_prints_one_document_per_page(tmp_path: Path) -> None:
    pages = ROOT / "tests" / "fixtures" / "pages"
    files = sorted(pages.glob("*.html.gz"))[:3]
    result = newswire(tmp_path, "extract", *map(str, files), timeout=120)
    assert result.returncode == 0, result.stderr
    documents = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(documents) == len(files)
    for path, doc in zip(files, documents, strict=True):
        assert doc["url"].endswith(path.name) and len(doc["text"]) > 200
        validate_message(doc)
    stdin = subprocess.run(
        [sys.executable, "-m", "worker", "extract", "--url", "https://news.example/a"],
        input=(ROOT / "seeds" / "000_fef04045498fa26b.txt").read_text().join(
            ["<html><body><article><p>", "</p></article></body></html>"]),
        cwd=ROOT, env=command_env(tmp_path), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert json.loads(stdin.stdout)["url"] == "https://news.example/a"


def test_feeds_import_skips_a_bad_outline_and_says_so(tmp_path: Path) -> None:
    opml = tmp_path / "feeds.opml"
    opml.write_text(
        '<?xml version="1.0"?><opml version="2.0"><head><title>t</title></head><body>'
        '<outline type="rss" text="a" xmlUrl="https://a.example.com/feed.xml"/>'
        '<outline type="rss" text="b" xmlUrl="ftp://b.example.com/feed.xml"/>'
        '<outline type="rss" text="c" xmlUrl="https://c.example.com/feed.xml"/>'
        "</body></opml>"
    )
    result = newswire(tmp_path, "feeds", "import", str(opml))
    assert result.returncode == 1
    assert "imported 2 feeds, skipped 1" in result.stdout
    assert "skipped ftp://b.example.com/feed.xml: unsupported_scheme" in result.stderr
    assert "Traceback" not in result.stderr
    not_xml = tmp_path / "broken.opml"
    not_xml.write_text('<?xml version="1.0"?><opml><body><outline xmlUrl="https://x.example/f"')
    broken = newswire(tmp_path, "feeds", "import", str(not_xml))
    assert broken.returncode == 1 and "broken.opml is not XML" in broken.stderr
    assert "Traceback" not in broken.stderr
    listed = newswire(tmp_path, "feeds", "list", "--json")
    urls = sorted(json.loads(line)["url"] for line in listed.stdout.splitlines())
    assert urls == ["https://a.example.com/feed.xml", "https://c.example.com/feed.xml"]
    disabled = newswire(tmp_path, "feeds", "disable", "https://c.example.com/feed.xml")
    assert disabled.returncode == 0, disabled.stderr
    only = newswire(tmp_path, "feeds", "list", "--json", "--status", "disabled")
    assert [json.loads(line)["url"] for line in only.stdout.splitlines()] == [
        "https://c.example.com/feed.xml"
    ]
    assert newswire(tmp_path, "feeds", "list", "--tag", "nothing-tagged").stdout == ""
    removed = newswire(tmp_path, "feeds", "remove", "https://a.example.com/feed.xml")
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.startswith("removed ") and "sitemaps" not in removed.stdout
    left = newswire(tmp_path, "feeds", "list", "--json")
    assert [json.loads(line)["url"] for line in left.stdout.splitlines()] == [
        "https://c.example.com/feed.xml"
    ]
    assert newswire(tmp_path, "feeds", "remove", "https://a.example.com/feed.xml").returncode


def test_feeds_add_refuses_an_address_it_could_never_fetch(tmp_path: Path) -> None:
    for url, reason in [
        ("ftp://example.com/feed.xml", "unsupported_scheme"),
        ("https://example.com:99999/feed.xml", "invalid_url"),
        ("https://example.com:0/feed.xml", "invalid_url"),
    ]:
        result = newswire(tmp_path, "feeds", "add", "--no-discover", url)
        assert result.returncode == 1
        assert f"cannot add {url}: {reason}" in result.stderr
        assert "Traceback" not in result.stderr
    listed = newswire(tmp_path, "feeds", "list", "--json")
    assert listed.stdout == ""


def test_deadletter_retry_says_what_it_did_and_refuses_a_bad_since(tmp_path: Path) -> None:
    result = newswire(tmp_path, "deadletter", "retry", "--reason", "http_503", "--since", "6h")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("requeued 0 entries (0 dead letters matched")
    bad = newswire(tmp_path, "deadletter", "retry", "--all", "--since", "last tuesday")
    assert bad.returncode == 2 and "neither a duration" in bad.stderr
    assert "Traceback" not in bad.stderr
    unnamed = newswire(tmp_path, "deadletter", "retry")
    assert unnamed.returncode == 2 and "name the reasons to retry" in unnamed.stderr


@pytest.mark.skipif(
    not os.environ.get("NEWSWIRE_TEST_AMQP_URL"),
    reason="opt-in leg: set NEWSWIRE_TEST_AMQP_URL (e.g. amqp://guest:guest@127.0.0.1:5672//)",
)
def test_replay_with_a_rabbitmq_broker(tmp_path: Path) -> None:
    env = command_env(tmp_path)
    env["NEWSWIRE_BROKER_URL"] = os.environ["NEWSWIRE_TEST_AMQP_URL"]
    env["NEWSWIRE_KEY_PREFIX"] = f"amqp{os.getpid()}"  # own queues on a shared broker
    result = subprocess.run(
        [sys.executable, "-m", "worker", "replay", "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["published"] == 1
