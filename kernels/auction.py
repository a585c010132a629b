"""Bundle competition: a first-price sealed-bid auction for each opportunity, S Monte Carlo scenarios per thread.

Per opportunity i (value v_i in wei: its profit after gas, before paying the builder; strategy kind k_i) and
scenario s, each of the N competing searchers j:
- sees the opportunity with probability  p_j = focus[j, k_i] · exp(−latency_ms[j] / latency_window_ms)
  (specialization × latency: a slow searcher finds it after the block is built);
- if it does, bids  min(capital_wei[j], share_j · v̂_j): its perceived value v̂_j = v_i · exp(σ_j·Z − σ_j²/2)
  (mean-unbiased lognormal noise, σ_j = value_noise · (1 − skill_j)), its bid share
  share_j = min_bid_share + (max_bid_share − min_bid_share) · skill_j (skilled searchers bid closer to value).
We always bid, `our_bid_for`: policy fixed = our_bid_fraction · v; policy shade = min(our_bid_fraction · v,
(1 + shade_margin) · E[max competing bid]), the expectation over S *calibration* scenarios (their own counters,
so the bid is not fitted to the scenarios it is scored on). The highest bid wins; exact ties go to the larger
tie-break uniform. Our payoff: v − our bid if we win, else −failed_cost_wei (0 for a bundle: a losing bundle is
not included).

The searchers' arrays come from the host (gpubt.market.searchers.bidding_arrays): see[j, kind] = p_j, share_j and
σ_j, computed once per launch instead of once per scenario and searcher (an exp each: a quarter of the kernel's
time); the params' latency window, value noise and bid shares are what the host computed them from.

Randomness (kernels/rng.py): key = stream_key(seed, opp_id[i]); counter = (scenario, searcher, draw, phase), we
are searcher OUR_SEARCHER. So a draw depends on ids only, never on threads, and the CPU, the CUDA simulator and
the pure-Python reference draw the same numbers. Memory is O(opportunities): scenarios and searchers are loops
inside the thread (the optional per-scenario outputs record the first `out_scenario_won.shape[1]` scenarios).
"""
import math

from numba import prange  # noqa: F401  (the CPU driver's loop; kernels/compile.py rebinds the names below)

from .rng import RNG_FUNCTIONS, normal, stream_key, uniform2  # noqa: F401  (rebound per target)

# params: a float64 array of N_PARAMS, indexed by these (gpubt/analysis/competition.py fills it)
P_LATENCY_WINDOW_MS = 0
P_VALUE_NOISE = 1
P_MIN_BID_SHARE = 2
P_MAX_BID_SHARE = 3
P_POLICY = 4
P_OUR_BID_FRACTION = 5
P_SHADE_MARGIN = 6
P_FAILED_COST_WEI = 7
N_PARAMS = 8

POLICY_FIXED = 0
POLICY_SHADE = 1

# counter words: phase (scored scenarios, calibration of the shaded bid, the realized outcome) and draw slot
PHASE_SCENARIO = 0
PHASE_CALIBRATION = 1
PHASE_REALIZED = 2
DRAW_SEE = 0        # uniform2: (sees it?, tie-break)
DRAW_VALUE = 1      # normal: perceived-value noise
OUR_SEARCHER = 0xFFFFFFFF   # our searcher index in the counter (competitors are 0..N−1)


def competitor_bid(k0, k1, scenario, phase, j, value_wei, kind, searcher_see, searcher_share,
                   searcher_capital_wei, searcher_sigma, params):
    """(bid in wei, tie-break uniform) of competitor j in one scenario; the bid is −1.0 when j does not see it."""
    u_see, u_tie = uniform2(k0, k1, scenario, j, DRAW_SEE, phase)
    if u_see >= searcher_see[j, kind]:
        return -1.0, u_tie
    sigma = searcher_sigma[j]
    z = normal(k0, k1, scenario, j, DRAW_VALUE, phase)
    perceived = value_wei * math.exp(sigma * z - 0.5 * sigma * sigma)
    bid = searcher_share[j] * perceived
    if bid > searcher_capital_wei[j]:
        bid = searcher_capital_wei[j]
    if bid < 0.0:
        bid = 0.0
    return bid, u_tie


def auction_scenario(k0, k1, scenario, phase, value_wei, kind, our_bid, searcher_see, searcher_share,
                     searcher_capital_wei, searcher_sigma, params):
    """(we win, max competing bid (0 if none), the competing winner's bid (0 if we win), competitors bidding)."""
    _, our_tie = uniform2(k0, k1, scenario, OUR_SEARCHER, DRAW_SEE, phase)
    best_bid = -1.0
    best_tie = 0.0
    bidders = 0
    for j in range(searcher_share.shape[0]):
        bid, tie = competitor_bid(k0, k1, scenario, phase, j, value_wei, kind, searcher_see, searcher_share,
                                  searcher_capital_wei, searcher_sigma, params)
        if bid < 0.0:
            continue
        bidders += 1
        if bid > best_bid or (bid == best_bid and tie > best_tie):
            best_bid = bid
            best_tie = tie
    won = best_bid < our_bid or (best_bid == our_bid and our_tie > best_tie)
    max_bid = best_bid if best_bid > 0.0 else 0.0
    if won:
        return True, max_bid, 0.0, bidders
    return False, max_bid, max_bid, bidders


def our_bid_for(k0, k1, n_scenarios, value_wei, kind, searcher_see, searcher_share, searcher_capital_wei,
                searcher_sigma, params):
    """Our bid in wei for an opportunity of value `value_wei` (policy fixed or shade; 0 when the value is <= 0)."""
    cap = params[P_OUR_BID_FRACTION] * value_wei
    if cap <= 0.0:
        return 0.0
    if params[P_POLICY] != POLICY_SHADE:
        return cap
    total = 0.0
    for s in range(n_scenarios):
        _, max_bid, _, _ = auction_scenario(k0, k1, s, PHASE_CALIBRATION, value_wei, kind, 0.0, searcher_see,
                                            searcher_share, searcher_capital_wei, searcher_sigma, params)
        total += max_bid
    shaded = (1.0 + params[P_SHADE_MARGIN]) * total / n_scenarios
    if shaded < cap:
        return shaded
    return cap


def auction_opportunity(i, seed, n_scenarios, opp_id, opp_value_wei, opp_kind, searcher_see, searcher_share,
                        searcher_capital_wei, searcher_sigma, params, out_our_bid_wei, out_win_probability,
                        out_expected_payoff_wei, out_mean_winning_bid_wei, out_mean_max_bid_wei, out_mean_bidders,
                        out_realized_won, out_realized_max_bid_wei, out_scenario_won, out_scenario_max_bid_wei):
    """All S scenarios of opportunity i (n_scenarios >= 1), its summary outputs and its realized outcome."""
    k0, k1 = stream_key(seed, opp_id[i])
    value = opp_value_wei[i]
    kind = opp_kind[i]
    bid = our_bid_for(k0, k1, n_scenarios, value, kind, searcher_see, searcher_share, searcher_capital_wei,
                      searcher_sigma, params)
    failed_cost = params[P_FAILED_COST_WEI]
    wins = 0
    payoff = 0.0
    winning_bid_total = 0.0
    max_bid_total = 0.0
    bidders_total = 0
    recorded = out_scenario_won.shape[1]
    for s in range(n_scenarios):
        won, max_bid, winner_bid, bidders = auction_scenario(k0, k1, s, PHASE_SCENARIO, value, kind, bid,
                                                             searcher_see, searcher_share,
                                                             searcher_capital_wei, searcher_sigma, params)
        if won:
            wins += 1
            payoff += value - bid
        else:
            payoff -= failed_cost
            winning_bid_total += winner_bid
        max_bid_total += max_bid
        bidders_total += bidders
        if s < recorded:
            out_scenario_won[i, s] = won
            out_scenario_max_bid_wei[i, s] = max_bid
    out_our_bid_wei[i] = bid
    out_win_probability[i] = wins / n_scenarios
    out_expected_payoff_wei[i] = payoff / n_scenarios
    out_mean_winning_bid_wei[i] = winning_bid_total / (n_scenarios - wins) if wins < n_scenarios else 0.0
    out_mean_max_bid_wei[i] = max_bid_total / n_scenarios
    out_mean_bidders[i] = bidders_total / n_scenarios
    won, max_bid, _, _ = auction_scenario(k0, k1, 0, PHASE_REALIZED, value, kind, bid, searcher_see,
                                          searcher_share, searcher_capital_wei, searcher_sigma, params)
    out_realized_won[i] = won
    out_realized_max_bid_wei[i] = max_bid


def realized_opportunity(i, seed, n_scenarios, opp_id, opp_value_wei, opp_kind, searcher_see, searcher_share,
                         searcher_capital_wei, searcher_sigma, params, out_our_bid_wei, out_realized_won):
    """Opportunity i's bid and realized outcome alone, equal to `auction_opportunity`'s (the same counters): what
    the ordered pass needs to know when it sends a bundle, without the S scored scenarios."""
    k0, k1 = stream_key(seed, opp_id[i])
    bid = our_bid_for(k0, k1, n_scenarios, opp_value_wei[i], opp_kind[i], searcher_see, searcher_share,
                      searcher_capital_wei, searcher_sigma, params)
    won, _, _, _ = auction_scenario(k0, k1, 0, PHASE_REALIZED, opp_value_wei[i], opp_kind[i], bid, searcher_see,
                                    searcher_share, searcher_capital_wei, searcher_sigma, params)
    out_our_bid_wei[i] = bid
    out_realized_won[i] = won


def auction_cpu(seed, n_scenarios, opp_id, opp_value_wei, opp_kind, searcher_see, searcher_share,
                searcher_capital_wei, searcher_sigma, params, out_our_bid_wei, out_win_probability,
                out_expected_payoff_wei, out_mean_winning_bid_wei, out_mean_max_bid_wei, out_mean_bidders,
                out_realized_won, out_realized_max_bid_wei, out_scenario_won, out_scenario_max_bid_wei):
    """CPU driver: a parallel loop over opportunities."""
    for i in prange(opp_id.shape[0]):
        auction_opportunity(i, seed, n_scenarios, opp_id, opp_value_wei, opp_kind, searcher_see,
                            searcher_share, searcher_capital_wei, searcher_sigma, params, out_our_bid_wei,
                            out_win_probability, out_expected_payoff_wei, out_mean_winning_bid_wei,
                            out_mean_max_bid_wei, out_mean_bidders, out_realized_won, out_realized_max_bid_wei,
                            out_scenario_won, out_scenario_max_bid_wei)


def auction_cuda(seed, n_scenarios, opp_id, opp_value_wei, opp_kind, searcher_see, searcher_share,
                 searcher_capital_wei, searcher_sigma, params, out_our_bid_wei, out_win_probability,
                 out_expected_payoff_wei, out_mean_winning_bid_wei, out_mean_max_bid_wei, out_mean_bidders,
                 out_realized_won, out_realized_max_bid_wei, out_scenario_won, out_scenario_max_bid_wei):
    """CUDA driver: one thread per opportunity (`cuda` is bound by kernels/compile.py)."""
    i = cuda.grid(1)  # noqa: F821
    if i < opp_id.shape[0]:
        auction_opportunity(i, seed, n_scenarios, opp_id, opp_value_wei, opp_kind, searcher_see,
                            searcher_share, searcher_capital_wei, searcher_sigma, params, out_our_bid_wei,
                            out_win_probability, out_expected_payoff_wei, out_mean_winning_bid_wei,
                            out_mean_max_bid_wei, out_mean_bidders, out_realized_won, out_realized_max_bid_wei,
                            out_scenario_won, out_scenario_max_bid_wei)


def realized_cpu(seed, n_scenarios, opp_id, opp_value_wei, opp_kind, searcher_see, searcher_share,
                 searcher_capital_wei, searcher_sigma, params, out_our_bid_wei, out_realized_won):
    """CPU driver of the realized outcomes alone (a few bundles at a time: no prange)."""
    for i in range(opp_id.shape[0]):
        realized_opportunity(i, seed, n_scenarios, opp_id, opp_value_wei, opp_kind, searcher_see,
                             searcher_share, searcher_capital_wei, searcher_sigma, params, out_our_bid_wei,
                             out_realized_won)


def realized_cuda(seed, n_scenarios, opp_id, opp_value_wei, opp_kind, searcher_see, searcher_share,
                  searcher_capital_wei, searcher_sigma, params, out_our_bid_wei, out_realized_won):
    """CUDA driver of the realized outcomes alone: one thread per opportunity."""
    i = cuda.grid(1)  # noqa: F821
    if i < opp_id.shape[0]:
        realized_opportunity(i, seed, n_scenarios, opp_id, opp_value_wei, opp_kind, searcher_see,
                             searcher_share, searcher_capital_wei, searcher_sigma, params, out_our_bid_wei,
                             out_realized_won)


# The kernel's declaration (gpubt.kernels.REGISTRY): device functions in dependency order (the RNG's first),
# (CPU, CUDA) drivers.
DEVICE_FUNCTIONS = RNG_FUNCTIONS + (competitor_bid, auction_scenario, our_bid_for, auction_opportunity,
                                    realized_opportunity)
DRIVERS = ((auction_cpu, auction_cuda), (realized_cpu, realized_cuda))
