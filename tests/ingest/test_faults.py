"""Faults between gpubt and the node (timeouts, 429, 5xx, dropped connections, too-many-results) and a SIGKILLed
ingest: the dataset equals the fault-free one."""
from __future__ import annotations

import http.server
import json
import random
import signal
import socketserver
import threading
import time

import pytest
import requests

from gpubt.data.rpc import ingest

from ..cli import gpubt
from .conftest import ingest_config
from .helpers import assert_same_dataset

pytestmark = pytest.mark.slow  # a ganache node with the Uniswap contracts and a scripted history (conftest.py)


class FaultProxy:
    """A threaded HTTP proxy to the node that injects faults into a seeded share of the requests."""

    KINDS = ("timeout", "http_429", "http_503", "drop", "too_many")

    def __init__(self, upstream: str, rate: float = 0.25, seed: int = 1):
        self.upstream, self.rate, self.rng = upstream, rate, random.Random(seed)
        self.max_log_range = 10
        self.counts = {k: 0 for k in self.KINDS}
        self.forwarded = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with proxy.lock:
                    fault = proxy.rng.choice(proxy.KINDS[:4]) if proxy.rng.random() < proxy.rate else None
                    if fault is None and b"eth_getLogs" in body:  # like many providers: at most 10 blocks per query
                        q = json.loads(body)["params"][0]
                        if int(q["toBlock"], 16) - int(q["fromBlock"], 16) + 1 > proxy.max_log_range:
                            fault = "too_many"
                    if fault:
                        proxy.counts[fault] += 1
                    else:
                        proxy.forwarded += 1
                if fault == "timeout":
                    time.sleep(1.5)  # beyond the client's timeout
                    self.close_connection = True
                    return
                if fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if fault in ("http_429", "http_503"):
                    payload = b"slow down" if fault == "http_429" else b"upstream unavailable"
                    self.send_response(429 if fault == "http_429" else 503)
                    if fault == "http_429":
                        self.send_header("Retry-After", "0")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if fault == "too_many":
                    payload = (b'{"jsonrpc":"2.0","id":1,"error":{"code":-32005,'
                               b'"message":"query returned more than 10000 results"}}')
                else:
                    payload = requests.post(proxy.upstream, data=body,
                                            headers={"Content-Type": "application/json"}).content
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_faults_are_survived(market, reference, tmp_path):
    with FaultProxy(market.node.url, rate=0.3) as proxy:
        res = ingest(ingest_config(market, tmp_path / "faulty", rpc_url=proxy.url, timeout_s=1.0, max_retries=30,
                                   concurrency=4, chunk_size=25, batch_size=40))
    injected = sum(proxy.counts.values())
    print(f"\nfaults injected {proxy.counts} (total {injected}), forwarded {proxy.forwarded}; client retries "
          f"{ {k: v for k, v in res.rpc_stats.items() if k.startswith('retry') or k == 'range_splits'} }")
    assert all(v > 0 for v in proxy.counts.values()), proxy.counts
    assert res.rpc_stats.get("range_splits", 0) >= proxy.counts["too_many"]
    assert_same_dataset(tmp_path / "faulty", reference[0])


def _cli_ingest(market, out, failpoint=""):
    """`gpubt ingest` in a subprocess (the point here: it gets SIGKILLed at the failpoint)."""
    return gpubt("ingest", f"rpc_url={market.node.url}", "chain_id=1337", "first_block=1",
                 f"last_block={market.last_block}", f"factories=[{','.join(market.factories())}]",
                 f"weth={market.c['weth'].address}", f"out={out}", "partition_blocks=50", "chunk_size=20",
                 "confirmations=0", "eth_usd=2000", "progress=false", timeout=300, env={"GPUBT_FAILPOINT": failpoint})


@pytest.mark.parametrize("failpoint", ["ingest-after-partition:2", "ingest-before-write:3"])
def test_sigkill_then_resume_is_identical(market, reference, tmp_path, failpoint):
    out = tmp_path / "killed"
    killed = _cli_ingest(market, out, failpoint)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    resumed = _cli_ingest(market, out)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_same_dataset(out, reference[0])
