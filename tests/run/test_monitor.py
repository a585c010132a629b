"""The Prometheus endpoint, scraped over real HTTP, and the opportunity-count anomaly warning."""
import logging
import socket
import urllib.error
import urllib.request

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gpubt.run.monitor import _LIBC, AnomalyDetector, Monitor, release_memory, rss_bytes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(url: str) -> dict:
    """{(sample name, frozenset(labels)): value} of one /metrics scrape."""
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_endpoint_serves_observed_batches():
    port = free_port()
    with Monitor(port) as monitor:
        assert monitor.url == f"http://127.0.0.1:{port}/metrics"
        monitor.observe_batch(250, 0.5, {"arbitrage": 10}, {"arbitrage": 3}, 0.25, first_block=100)
        monitor.observe_batch(250, 0.25, {"arbitrage": 6, "sandwich": 4}, {"arbitrage": 1, "sandwich": 2},
                              -0.05, first_block=350)
        monitor.observe_batch(100, 2.0, {"arbitrage": 0}, {}, 0.0, first_block=600)
        m = scrape(monitor.url)
    none = frozenset()
    assert m[("gpubt_blocks_processed_total", none)] == 600
    assert m[("gpubt_batches_total", none)] == 3
    assert m[("gpubt_blocks_per_second", none)] == pytest.approx(50.0)            # last batch: 100 / 2 s
    assert m[("gpubt_blocks_per_second_avg", none)] == pytest.approx(600 / 2.75)
    assert m[("gpubt_opportunities_total", frozenset({("strategy", "arbitrage")}))] == 16
    assert m[("gpubt_opportunities_total", frozenset({("strategy", "sandwich")}))] == 4
    assert m[("gpubt_trades_total", frozenset({("strategy", "arbitrage")}))] == 4
    assert m[("gpubt_trades_total", frozenset({("strategy", "sandwich")}))] == 2
    assert m[("gpubt_profit_eth", none)] == pytest.approx(0.20)
    assert m[("gpubt_batch_seconds_count", none)] == 3
    assert m[("gpubt_batch_seconds_sum", none)] == pytest.approx(2.75)
    assert m[("gpubt_batch_seconds_bucket", frozenset({("le", "0.25")}))] == 1
    assert m[("gpubt_batch_seconds_bucket", frozenset({("le", "0.5")}))] == 2
    assert m[("gpubt_batch_seconds_bucket", frozenset({("le", "+Inf")}))] == 3
    assert m[("gpubt_rss_bytes", none)] > 10 * 2**20          # a Python process with numpy loaded
    assert m[("gpubt_anomalies_total", none)] == 0
    # stopped: the port is closed again
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_port_zero_disables_the_endpoint_but_still_counts():
    monitor = Monitor(0).start()
    assert not monitor.enabled and monitor.url is None
    monitor.observe_batch(10, 0.1, {"arbitrage": 2}, {"arbitrage": 1}, 0.01)
    assert monitor.registry.get_sample_value("gpubt_blocks_processed_total") == 10
    monitor.stop()


def test_busy_port_names_the_option():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(OSError, match=f"monitor.port = {port}"):
            Monitor(port).start()
    with pytest.raises(ValueError, match="monitor.port"):
        Monitor(70000)


def test_anomaly_warning_names_block_range_and_numbers(caplog):
    rng = np.random.default_rng(0)
    monitor = Monitor(0, anomaly_k=4.0, anomaly_warmup=10)
    caplog.set_level(logging.WARNING, logger="gpubt.monitor")
    first = 18_000_000
    for i in range(30):  # ~5 opportunities per block, 100-block batches
        z = monitor.observe_batch(100, 0.1, {"arbitrage": int(rng.normal(500, 40))}, {}, 0.0,
                                  first_block=first + 100 * i)
        assert z is None
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    z = monitor.observe_batch(100, 0.1, {"arbitrage": 4_000}, {}, 0.0, first_block=first + 3000)
    assert z is not None and z > 4
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0]
    assert "blocks 18003000..18003099" in message
    assert "4000 opportunities" in message and "40.00 per block" in message and "above" in message
    assert monitor.registry.get_sample_value("gpubt_anomalies_total") == 1


def test_anomaly_detector_steady_drop_and_warmup():
    steady = AnomalyDetector(k=3.0, alpha=0.2, warmup=5, min_std=0.5)
    assert all(steady.update(v) is None for v in [7.0] * 50 + [7.2, 6.9, 7.1] * 10)  # within min_std noise
    assert steady.update(0.0) < -3                                                 # a collapse is flagged too
    fresh = AnomalyDetector(k=3.0, warmup=5)
    assert [fresh.update(v) for v in (1.0, 100.0, 1.0, 50.0, 2.0)] == [None] * 5   # warmup only trains
    with pytest.raises(ValueError):
        AnomalyDetector(alpha=0)


def test_anomaly_without_first_block_names_run_offsets(caplog):
    monitor = Monitor(0, anomaly_warmup=3, anomaly_min_std=0.1)
    caplog.set_level(logging.WARNING, logger="gpubt.monitor")
    for _ in range(5):
        monitor.observe_batch(50, 0.1, {"arbitrage": 50}, {}, 0.0)
    monitor.observe_batch(50, 0.1, {"arbitrage": 500}, {}, 0.0)
    assert "blocks +250..+299 of the run" in caplog.text


@pytest.mark.skipif(_LIBC is None, reason="no glibc malloc_trim here")
def test_release_memory_gives_freed_heap_back():
    """Freed malloc blocks below a live one stay resident (glibc only trims the heap's top) until
    release_memory: the post-run calls it after each partition."""
    blocks = [bytes(2000) for _ in range(100_000)]   # ~200 MB of malloc'd (not pymalloc) blocks
    last = blocks[-1]                                 # pins the heap's top
    del blocks
    before = rss_bytes()
    release_memory()
    assert before - rss_bytes() > 100 * 2**20
    assert len(last) == 2000
