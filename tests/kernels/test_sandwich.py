"""The sandwich kernel: V2 closed-form largest front-run vs exact integer bisection, profit unimodality, CPU build
vs the pure-Python source (CPU vs the CUDA build under the simulator: tests/kernels/test_cudasim.py; sm_90 PTX:
tests/kernels/test_ptx.py)."""
import numpy as np
import pytest

from gpubt.backend import Backend
from gpubt.exact import v2 as exact_v2
from gpubt.kernels.compile import build_kernel
from gpubt.strategies.sandwich import ExactPool, V2PoolFactory, exact_bundle, exact_max_frontrun, v2_victim_slack

from . import v3_market

GAS = (87_984.0, 99_427.0, 23_703.0)


@pytest.fixture(scope="module")
def py():
    return build_kernel("sandwich", "python")


@pytest.fixture(scope="module")
def cpu():
    return Backend("cpu").compiled("sandwich")  # the disk-cached build the backtester runs


def exact_v2_max_frontrun(r_in, r_out, v, m):
    """Largest integer a with getAmountOut(v) after front-run a >= m, by plain integer bisection (brute force)."""
    def ok(a):
        if a == 0:
            return exact_v2.get_amount_out(v, r_in, r_out) >= m
        o = exact_v2.get_amount_out(a, r_in, r_out)
        return exact_v2.get_amount_out(v, r_in + a, r_out - o) >= m
    lo, hi = 0, 1
    while ok(hi):
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo, ok


@pytest.mark.parametrize("seed", range(4))
def test_v2_closed_form_max_frontrun_vs_exact_bisection(py, seed):
    rng = np.random.default_rng(seed)
    for _ in range(25):
        r_in = int(10 ** rng.uniform(18, 24))
        r_out = int(r_in * 10 ** rng.uniform(-12, 3))
        v = int(r_in * 10 ** rng.uniform(-4, -1))
        slip = float(rng.choice([0.001, 0.005, 0.01, 0.03, 0.1]))
        m = int(exact_v2.get_amount_out(v, r_in, r_out) * (1 - slip))
        a_float = py.sandwich_max_frontrun_v2(float(r_in), float(r_out), 0.997, float(v), float(m))
        a_exact, ok = exact_v2_max_frontrun(r_in, r_out, v, m)
        assert ok(a_exact) and not ok(a_exact + 1)  # the victim gets >= m at the max and < m one unit above
        # floors make the exact boundary move by ~one output unit: relative 1/m of the victim's minimum
        assert a_float == pytest.approx(a_exact, rel=1e-9 + 100 / m)
        # the host's bracketed integer search (used by the strategy's exact re-pricing) finds the same boundary
        make = lambda: ExactPool(False, 3000, reserves=(r_in, r_out))  # noqa: E731
        assert exact_max_frontrun(make, True, [(v, m)], a_float, 10**40) == a_exact
    # a victim that fails even unsandwiched has no front-run
    assert py.sandwich_max_frontrun_v2(1e21, 1e21, 0.997, 1e18, 1e18) < 0


def random_scenarios(seed, n=60, v3_share=0.5, multi=True, exact_output_share=0.3):
    """Kernel args (without outputs) of random scenarios on the random V2/V3 batch of v3_market, and the exact
    pool of each scenario's state: (args, exact, victims, scen). A share of the victims are exact-output ones
    (amountInMax = input × (1 + slippage), amountOut = the float output of that input)."""
    args, _, info = v3_market.random_batch(seed, n_pools=10, n_blocks=3, v3_share=v3_share)
    state = args[9:21]
    log_offsets, log_key = state[0], state[1]
    rng = np.random.default_rng(seed + 100)
    py = build_kernel("sandwich", "python")
    pools = [p for p in range(len(log_offsets) - 1) if log_offsets[p + 1] > log_offsets[p]]
    s_pool, s_key, s_zfo, s_start, s_count, victims_in, victims_min, s_victims, exact = [], [], [], [], [], [], [], [], []
    victims_exact_out = []
    capital = []
    for i in range(n):
        p = int(rng.choice(pools))
        j = int(rng.integers(log_offsets[p], log_offsets[p + 1]))
        zfo = bool(rng.random() < 0.5)
        is_v3 = bool(info["is_v3_pool"][p])
        gamma = 1 - info["fee"][p] / 1e6
        r0, r1, s, L, t = state[2][j], state[3][j], state[4][j], state[5][j], state[6][j]
        v = state[7][j]
        lo, hi = (state[8][v], state[8][v + 1]) if is_v3 else (0, 0)
        size = (L / s if zfo else L * s) if is_v3 else (r0 if zfo else r1)
        capital.append(10 * size)  # bisection resolution: 2**-64 of the capital
        count = int(rng.integers(2, 4)) if (multi and rng.random() < 0.3) else 1
        s_start.append(len(s_victims))
        for _ in range(count):
            amount = size * 10 ** rng.uniform(-4, -1.5)
            out, r0, r1, s, L, t, c, ok = py.pool_swap(amount, zfo, is_v3, gamma, r0, r1, s, L, t, state[9],
                                                       state[10], state[11], lo, hi, 64)
            s_victims.append(len(victims_in))
            slip = float(rng.choice([0.001, 0.005, 0.01, 0.03]))
            if rng.random() < exact_output_share:
                victims_in.append(float(int(amount * (1 + slip))))
                victims_min.append(float(int(out)))
                victims_exact_out.append(True)
            else:
                victims_in.append(float(int(amount)))
                victims_min.append(float(int(out * (1 - slip))))
                victims_exact_out.append(False)
        s_pool.append(p), s_key.append(int(log_key[j])), s_zfo.append(zfo), s_count.append(count)
        exact.append(info["exact"][j])
    n = len(s_pool)
    block = np.zeros(n, np.int64)
    kargs = (np.array(s_pool, np.int32), np.array(s_key, np.int64), np.array(s_zfo), np.array(s_start, np.int64),
             np.array(s_count, np.int32), np.array(capital), np.ones(n), np.full(n, 1e9) + block,
             np.array(s_victims, np.int32), np.array(victims_in), np.array(victims_min),
             np.array(victims_exact_out, np.bool_), np.asarray(info["is_v3_pool"]), 1 - info["fee"] / 1e6, *state, 64, *GAS)
    return kargs, exact, info


def outputs(n):
    return [np.zeros(n) for _ in range(4)] + [np.zeros(n, np.int64)]


@pytest.mark.parametrize("seed, v3_share", [(0, 0.0), (1, 0.5), (2, 0.8)])
def test_cpu_equals_python_reference(py, cpu, seed, v3_share):
    kargs, _, _ = random_scenarios(seed, v3_share=v3_share)
    n = kargs[0].shape[0]
    o_cpu, o_py = outputs(n), outputs(n)
    cpu.screen_sandwich_cpu(*kargs, *o_cpu)
    for i in range(n):
        py.screen_sandwich(i, *kargs, *o_py)
    for a, b in zip(o_cpu, o_py):
        np.testing.assert_array_equal(a, b)
    assert (o_cpu[2] > 0).any() and (o_cpu[2] == 0).any()  # profitable and unprofitable scenarios both occur


def test_screen_optimum_is_the_max_of_a_profit_scan(py):
    """P(a) is unimodal where every victim executes, [0, a_all]: the screen's optimum beats a 400-point scan of
    that region and of the first victim's bound a_first (beyond a_all later victims revert; the screen and the
    exact re-pricing both take a_first as the one candidate there), up to float noise."""
    kargs, _, _ = random_scenarios(4, n=30, v3_share=0.5)
    n = kargs[0].shape[0]
    o = outputs(n)
    state = kargs[14:26]
    for i in range(n):
        py.screen_sandwich(i, *kargs, *o)
        a_hi = min(o[1][i], kargs[5][i])
        if a_hi <= 0:
            continue
        p = int(kargs[0][i])
        k = py.find_state(state[0], state[1], p, kargs[1][i])
        is_v3 = bool(kargs[12][p])
        v = state[7][k]
        lo, hi = (state[8][v], state[8][v + 1]) if is_v3 else (0, 0)
        scan = []
        for a in np.linspace(0, a_hi, 401)[1:]:
            g, first, every, c, ok = py.sandwich_eval(
                a, kargs[3][i], kargs[4][i], kargs[8], kargs[9], kargs[10], kargs[11], bool(kargs[2][i]), is_v3,
                kargs[13][p], state[2][k], state[3][k], state[4][k], state[5][k], state[6][k], state[9], state[10],
                state[11], lo, hi, 64)
            scan.append(g if ok and (every or a == a_hi) else -np.inf)
        assert o[2][i] >= max(max(scan), 0.0) * (1 - 1e-9) - 1e-6 * a_hi


@pytest.mark.parametrize("seed", range(3))
def test_lean_v2_slack_equals_the_exact_bundle(seed):
    """exact_max_frontrun's V2 path (integer steps, no pool objects) gives the slack exact_bundle gives, reverts
    included (an empty reserve; a victim past its limit), for either direction, several victims, exact-input and
    exact-output ones, and so the same largest front-run."""
    rng = np.random.default_rng(seed)
    for case in range(40):
        r0 = int(10 ** rng.uniform(15, 25)) if case % 10 else 0   # every 10th pool is empty: every swap reverts
        r1 = int(10 ** rng.uniform(6, 25))
        zfo = bool(rng.integers(2))
        fee = int(rng.choice([500, 3000, 10000]))
        r_in, r_out = (r0, r1) if zfo else (r1, r0)
        victims = []
        for _ in range(int(rng.integers(1, 4))):
            v = int(max(r_in, 10**12) * 10 ** rng.uniform(-5, -1)) if rng.random() > 0.1 else 0
            out = exact_v2.get_amount_out(v, r_in, r_out, fee) if v > 0 and r_in > 0 and r_out > 0 else 0
            slip = float(rng.choice([0.0, 0.002, 0.02, 0.2]))
            if rng.random() < 0.4:  # exact output: (amountInMax, amountOut)
                victims.append((int(v * (1 + slip)), out, True))
            else:
                victims.append((v, int(out * (1 - slip))))
        factory = V2PoolFactory(fee, (r0, r1))
        lean = v2_victim_slack(fee, r0, r1, zfo, victims)
        for a in [0, 1, 7] + [int(max(r_in, 1) * 10 ** e) for e in rng.uniform(-8, 1, 6)]:
            r = exact_bundle(factory, zfo, a, victims, back_run=False)
            want = None if r is None else r["slack"]
            assert lean(a) == want, (case, a)
        hint = float(max(r_in, 1)) * 1e-3
        generic = lambda f=factory: f()  # noqa: E731  (a plain callable: the bundle-per-step path)
        assert exact_max_frontrun(factory, zfo, victims, hint, 10**40) == exact_max_frontrun(
            generic, zfo, victims, hint, 10**40)


def test_exact_bundle_round_trip_keeps_every_victim_whole():
    """Exact re-pricing at the exact largest front-run: every victim gets >= its minimum; one unit more breaks one."""
    kargs, exact, info = random_scenarios(5, n=40, v3_share=0.5)
    n = kargs[0].shape[0]
    o = outputs(n)
    build_kernel("sandwich", "python").screen_sandwich_cpu(*kargs, *o)
    checked = 0
    for i in range(n):
        if o[2][i] <= 0:
            continue
        start, count = int(kargs[3][i]), int(kargs[4][i])
        victims = [(int(kargs[9][kargs[8][start + j]]), int(kargs[10][kargs[8][start + j]]),
                    bool(kargs[11][kargs[8][start + j]])) for j in range(count)]
        kind = exact[i]
        p = int(kargs[0][i])
        if kind[0] == "v2":
            make = lambda kind=kind, p=p: ExactPool(False, int(info["fee"][p]), reserves=(kind[1], kind[2]))  # noqa
        else:
            make = lambda kind=kind, p=p: ExactPool(True, int(info["fee"][p]),  # noqa: E731
                                                    v3_pool=v3_market.copy_pool(kind[1]))
        zfo = bool(kargs[2][i])
        a_max = exact_max_frontrun(make, zfo, victims, float(o[1][i]), 10**40)
        assert a_max > 0
        r = exact_bundle(make, zfo, a_max, victims)
        assert r["feasible"] and not any(r["reverted"]) and r["slack"] >= 0
        over = exact_bundle(make, zfo, a_max + 1, victims)
        assert over is None or any(over["reverted"])
        first = exact_max_frontrun(make, zfo, victims[:1], float(o[1][i]), 10**40)  # the bundle's bound
        assert first >= a_max
        assert first == pytest.approx(o[1][i], rel=1e-6)
        checked += 1
    assert checked >= 5
