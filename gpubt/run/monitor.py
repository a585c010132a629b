"""Live monitoring of a backtest: a Prometheus /metrics endpoint and an opportunity-count anomaly detector.

    monitor = Monitor(port=9100).start()        # port 0: no HTTP endpoint (metrics and anomaly checks still run)
    monitor.observe_batch(n_blocks, seconds, {"arbitrage": 12}, {"arbitrage": 3}, profit_eth=0.04,
                          first_block=18_000_000)
    monitor.stop()

The endpoint binds 127.0.0.1 only; every Monitor has its own registry, so several can live in one process.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import math
import os
import resource

import pyarrow as pa
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger("gpubt.monitor")

# batch latency buckets, seconds: a tiny CPU batch is milliseconds, a big GPU batch a few seconds
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def rss_bytes() -> float:
    """Resident set size of this process now (Linux /proc), else its peak (getrusage)."""
    try:
        with open("/proc/self/statm") as f:
            return float(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return float(peak if os.uname().sysname == "Darwin" else peak * 1024)


def release_memory() -> None:
    """Give freed memory back to the OS: Arrow's pool keeps freed pages, and glibc's malloc keeps freed heap
    below its top (~90 MB after a 4-partition run's post-run) until malloc_trim. No-op where there is neither."""
    pa.default_memory_pool().release_unused()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _glibc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _glibc()


class AnomalyDetector:
    """Flags values more than `k` standard deviations from their exponentially weighted trailing mean.

    EWMA with smoothing `alpha` (weight of the newest value): mean ← mean + α·d, var ← (1 − α)(var + α·d²),
    d = x − mean (before the update). A value is tested against the state *before* it is folded in; the
    first `warmup` values only train. The deviation is max(√var, `min_std`), so a perfectly steady series
    does not flag noise of a fraction of `min_std`.
    """

    def __init__(self, k: float = 4.0, alpha: float = 0.1, warmup: int = 10, min_std: float = 1.0):
        if k <= 0 or not 0 < alpha <= 1 or warmup < 1 or min_std < 0:
            raise ValueError(f"AnomalyDetector(k={k}, alpha={alpha}, warmup={warmup}, min_std={min_std}): "
                             "need k > 0, 0 < alpha <= 1, warmup >= 1, min_std >= 0")
        self.k, self.alpha, self.warmup, self.min_std = float(k), float(alpha), int(warmup), float(min_std)
        self.mean = 0.0
        self.var = 0.0
        self.count = 0

    def update(self, value: float) -> float | None:
        """Fold `value` in; returns its z-score against the trailing state when it is an anomaly, else None."""
        value = float(value)
        z = None
        if self.count >= self.warmup:
            std = max(math.sqrt(self.var), self.min_std)
            score = (value - self.mean) / std if std > 0 else (math.inf if value != self.mean else 0.0)
            if abs(score) > self.k:
                z = score
        if self.count == 0:
            self.mean = value
        else:
            d = value - self.mean
            self.mean += self.alpha * d
            self.var = (1.0 - self.alpha) * (self.var + self.alpha * d * d)
        self.count += 1
        return z


class Monitor:
    """Prometheus metrics of a run (blocks, rates, opportunities and trades by strategy, profit, batch latency,
    RSS) on http://127.0.0.1:`port`/metrics, plus the opportunity-count anomaly warning (logging)."""

    def __init__(self, port: int = 0, *, anomaly_k: float = 4.0, anomaly_alpha: float = 0.1,
                 anomaly_warmup: int = 10, anomaly_min_std: float = 1.0, addr: str = "127.0.0.1"):
        if not 0 <= int(port) <= 65535:
            raise ValueError(f"monitor.port = {port}: must be 0 (disabled) or a TCP port 1..65535")
        self.port, self.addr = int(port), addr
        self.detector = AnomalyDetector(anomaly_k, anomaly_alpha, anomaly_warmup, anomaly_min_std)
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.blocks = Counter("gpubt_blocks_processed", "Blocks backtested", registry=r)
        self.batches = Counter("gpubt_batches", "Batches backtested", registry=r)
        self.blocks_per_second = Gauge("gpubt_blocks_per_second", "Blocks per second of the last batch",
                                       registry=r)
        self.blocks_per_second_avg = Gauge("gpubt_blocks_per_second_avg",
                                           "Blocks per second since the first batch (batch time only)", registry=r)
        self.opportunities = Counter("gpubt_opportunities", "Opportunities over the threshold", ["strategy"],
                                     registry=r)
        self.trades = Counter("gpubt_trades", "Trades taken", ["strategy"], registry=r)
        self.funnel = Counter("gpubt_funnel", "Opportunities reaching each stage of the loop's funnel (screened, "
                              "over_threshold, chosen, exact_confirmed, executed; the post-run stages are in "
                              "summary.json)",
                              ["strategy", "stage"], registry=r)
        self.profit = Gauge("gpubt_profit_eth", "Cumulative net profit of the trades taken, ETH", registry=r)
        self.latency = Histogram("gpubt_batch_seconds", "Wall time per batch, seconds", buckets=LATENCY_BUCKETS,
                                 registry=r)
        self.anomalies = Counter("gpubt_anomalies", "Batches whose opportunity rate was flagged as anomalous",
                                 registry=r)
        self.rss = Gauge("gpubt_rss_bytes", "Resident memory of the backtest process, bytes", registry=r)
        self.rss.set_function(rss_bytes)
        self._server = None
        self._thread = None
        self._blocks_total = 0
        self._seconds_total = 0.0

    @property
    def enabled(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str | None:
        return f"http://{self.addr}:{self.port}/metrics" if self.enabled else None

    def start(self) -> "Monitor":
        """Serve /metrics in a daemon thread (no-op with port 0); a busy port raises naming the option."""
        if self.port == 0 or self._server is not None:
            return self
        try:
            self._server, self._thread = start_http_server(self.port, addr=self.addr, registry=self.registry)
        except OSError as exc:
            raise OSError(f"monitor.port = {self.port}: cannot listen on {self.addr}:{self.port} ({exc}); "
                          "choose a free port or monitor.port=0 to disable the endpoint") from None
        log.info("monitor: Prometheus metrics on %s", self.url)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = self._thread = None

    def __enter__(self) -> "Monitor":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def observe_batch(self, n_blocks: int, seconds: float, opportunities_by_strategy: dict,
                      trades_by_strategy: dict, profit_eth: float, first_block: int | None = None,
                      last_block: int | None = None, funnel_by_strategy: dict | None = None) -> float | None:
        """Record one batch of `n_blocks` blocks that took `seconds`; profit_eth is the batch's net profit;
        `funnel_by_strategy`: {strategy: {stage: count}} of the batch's other loop stages (screened, chosen,
        exact_confirmed, executed; over_threshold is `opportunities_by_strategy`).

        The batch's opportunities per block go through the anomaly detector; an anomaly logs a warning naming
        the block range and the numbers, and its z-score is returned (None otherwise).
        """
        n_blocks = int(n_blocks)
        seconds = float(seconds)
        self.blocks.inc(n_blocks)
        self.batches.inc()
        self.latency.observe(seconds)
        self._blocks_total += n_blocks
        self._seconds_total += seconds
        if seconds > 0:
            self.blocks_per_second.set(n_blocks / seconds)
        if self._seconds_total > 0:
            self.blocks_per_second_avg.set(self._blocks_total / self._seconds_total)
        for strategy, count in opportunities_by_strategy.items():
            self.opportunities.labels(strategy=strategy).inc(count)
            self.funnel.labels(strategy=strategy, stage="over_threshold").inc(count)
        for strategy, count in trades_by_strategy.items():
            self.trades.labels(strategy=strategy).inc(count)
        self.profit.inc(float(profit_eth))
        for strategy, stages in (funnel_by_strategy or {}).items():
            for stage, count in stages.items():
                self.funnel.labels(strategy=strategy, stage=stage).inc(count)

        if n_blocks <= 0:
            return None
        n_opportunities = sum(opportunities_by_strategy.values())
        per_block = n_opportunities / n_blocks
        trailing_mean, trailing_std = self.detector.mean, max(math.sqrt(self.detector.var), self.detector.min_std)
        z = self.detector.update(per_block)
        if z is not None:
            self.anomalies.inc()
            if first_block is None:
                first_block = self._blocks_total - n_blocks
                where = f"blocks +{first_block}..+{first_block + n_blocks - 1} of the run"
            else:
                last = first_block + n_blocks - 1 if last_block is None else int(last_block)
                where = f"blocks {first_block}..{last}"
            log.warning("anomaly: %s had %d opportunities (%.2f per block), %.1f sigma %s the trailing mean "
                        "%.2f ± %.2f per block (k = %g)", where, n_opportunities, per_block, abs(z),
                        "above" if z > 0 else "below", trailing_mean, trailing_std, self.detector.k)
        return z
