"""`gpubt ingest` against a node that is not there or not a node (issue 22): it stops soon, within a bound the
user sets, logging each retry, with one line that names the URL and the options to change. Every server here
listens on 127.0.0.1 and stops by itself."""
from __future__ import annotations

import http.server
import logging
import socket
import threading
import time

import pytest

from gpubt.data.rpc import IngestConfig, IngestError, RpcUnavailable, ingest
from tests.cli import compose, gpubt

POOL = "0x" + "11" * 20
SERVER_LIFETIME_S = 60  # every server here closes after this long, whatever the test does


def _config(url: str, out, **kw) -> IngestConfig:
    return IngestConfig(**{"rpc_url": url, "out": str(out), "first_block": 1, "pools": [POOL], "progress": False,
                           **kw})


def _closed_port() -> int:
    with socket.socket() as s:  # bound then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never answers; counts them."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        held, deadline = [], time.monotonic() + SERVER_LIFETIME_S
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            held.append(conn)
            self.accepted += 1
        for conn in held:
            conn.close()
        self.sock.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)


class FixedAnswerServer:
    """An HTTP server on 127.0.0.1 giving every POST the same status and body."""

    def __init__(self, status: int, body: bytes):
        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._timer = threading.Timer(SERVER_LIFETIME_S, self.server.shutdown)
        self._timer.daemon = True

    def __enter__(self):
        self._thread.start()
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()
        self.server.shutdown()
        self.server.server_close()


def _one_line(proc) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr[-3000:]
    return lines[0]


def test_nothing_listening_fails_at_once(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}"
    t0 = time.monotonic()
    proc = gpubt("ingest", f"rpc_url={url}", "first_block=1", f"pools=[{POOL}]", f"out={tmp_path / 'x'}",
                 "progress=false", timeout=60)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    line = _one_line(proc)
    assert line.startswith(f"gpubt: error: {url}: ") and "Connection refused" in line and "rpc_url" in line, line
    assert elapsed < 20  # the process's start included; the ingest itself gives up in milliseconds
    assert not (tmp_path / "x").exists()


def test_a_node_that_never_answers_fails_within_the_bound(tmp_path, caplog):
    with SilentServer() as server, caplog.at_level(logging.WARNING, logger="gpubt.data.rpc"):
        t0 = time.monotonic()
        with pytest.raises(RpcUnavailable) as exc:
            ingest(_config(server.url, tmp_path / "x", timeout_s=1.0, max_retry_seconds=3.0, backoff_s=0.2))
        elapsed = time.monotonic() - t0
    assert 2.5 < elapsed < 5, elapsed
    message = str(exc.value)
    assert message.startswith(f"{server.url}: eth_chainId failed ") and "\n" not in message, message
    assert "no answer within" in message
    attempts = [r.getMessage() for r in caplog.records if "attempt" in r.getMessage()]
    assert len(attempts) >= 2 and server.accepted >= 2, (attempts, server.accepted)
    assert attempts[0].startswith(f"{server.url}: eth_chainId attempt 1/9 failed (no answer within 1.0 s); "
                                  "retrying in "), attempts[0]
    assert not (tmp_path / "x").exists()


def test_the_retry_hint_names_real_options(tmp_path):
    """Retries used up on HTTP 503s: the hint names `gpubt ingest` options that exist (configs/ingest.yaml)."""
    with FixedAnswerServer(503, b"upstream unavailable") as server:
        with pytest.raises(RpcUnavailable) as exc:
            ingest(_config(server.url, tmp_path / "x", max_retries=2, backoff_s=0.01))
    message = str(exc.value)
    assert "failed 3 times" in message and "HTTP 503" in message, message
    assert "rpc.max_retries" not in message and "ingest.concurrency" not in message
    options = compose(config_name="ingest")
    for key in ("timeout_s", "max_retry_seconds", "max_retries", "concurrency"):
        assert key in message and key in options, key


def test_default_bounds_are_short():
    c = compose(config_name="ingest")
    assert c.max_retry_seconds <= 60 and c.timeout_s <= c.max_retry_seconds


def test_an_answer_that_is_not_json_rpc(tmp_path):
    with FixedAnswerServer(200, b"{}") as server:
        proc = gpubt("ingest", f"rpc_url={server.url}", "first_block=1", f"pools=[{POOL}]",
                     f"out={tmp_path / 'x'}", "progress=false", timeout=60)
    assert proc.returncode == 2
    line = _one_line(proc)
    assert "not a JSON-RPC response" in line and "'{}'" in line and "eth_chainId" in line, line
    assert "chain id is 0" not in line


def test_an_answer_that_is_not_json_fails_at_once(tmp_path):
    page = b"<html>" + b"x" * 5000 + b"</html>"
    with FixedAnswerServer(200, page) as server:
        t0 = time.monotonic()
        with pytest.raises(RpcUnavailable, match="is not JSON") as exc:
            ingest(_config(server.url, tmp_path / "x"))
    assert time.monotonic() - t0 < 5
    assert len(str(exc.value)) < 400  # the page is shown truncated


@pytest.mark.parametrize("override", ["timeout_s=0", "max_retry_seconds=abc", "max_retry_seconds=inf"])
def test_bad_retry_options_name_the_key(override, tmp_path):
    proc = gpubt("ingest", "rpc_url=http://127.0.0.1:9", "first_block=1", f"pools=[{POOL}]",
                 f"out={tmp_path / 'x'}", override, timeout=60)
    assert proc.returncode == 2
    assert _one_line(proc).startswith(f"gpubt: error: {override}: must be"), proc.stderr
    with pytest.raises(IngestError):
        from gpubt.data.rpc import config_from_hydra

        config_from_hydra(compose("rpc_url=http://127.0.0.1:9", "first_block=1", "out=x", override,
                                  config_name="ingest"))
