"""The labeler against mev-inspect-js's mainnet fixtures (exact sandwiches / arbitrages / JITs and their profits,
nothing on the negative cases) and against the synthetic market's planted arbitrages."""
from __future__ import annotations

import json
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from gpubt import schema
from gpubt.data.labeler import ATTACKS, events_from_mev_inspect, label_mev, victims_of
from tests.conftest import SHARED_DATA

FIXTURES = SHARED_DATA / "mev-inspect-js-derived"
FILES = {"sandwiches": "sandwich", "arbitrage": "arbitrage", "jitSandwiches": "jit"}

pytestmark = pytest.mark.skipif(not (FIXTURES / "test" / "mev").is_dir(),
                                reason=f"{FIXTURES} not found (the shared real-data folder)")


def _cases():
    out = []
    for name in FILES:
        path = FIXTURES / "test" / "mev" / f"{name}.test.json"
        if path.is_file():
            for k, case in enumerate(json.loads(path.read_text())):
                out.append(pytest.param(name, case, id=f"{name}[{k}]-{case['test']}"))
    return out


CASES = _cases()


def _groups(name: str, inputs: dict) -> dict:
    """Input group → (swaps, deposits, withdrawals): each TS test runs the classifier once per swap list
    (swapsA, swapsB, ...); deposits / withdrawals go with the swaps of the same test."""
    extra = {k: v for k, v in inputs.items() if k in ("deposits", "withdrawals")}
    swap_lists = {k: v for k, v in inputs.items() if k not in extra}
    if not swap_lists and extra:
        swap_lists = {"swaps": []}
    return {k: (v, extra.get("deposits", []), extra.get("withdrawals", [])) for k, v in swap_lists.items()}


def _resolve(ref, inputs):
    """{"$ref": "swapsA[0]"} or {"$ref": "swaps"} → the fixture dict(s)."""
    m = re.fullmatch(r"(\w+)(?:\[(\d+)\])?", ref["$ref"])
    items = inputs[m.group(1)]
    return items if m.group(2) is None else items[int(m.group(2))]


def _swap_key(item) -> tuple:
    return item["transaction"]["hash"].lower(), int(item["event"]["logIndex"])


def _detect(kind: str, swaps, deposits, withdrawals):
    tables = events_from_mev_inspect(swaps, deposits, withdrawals)
    labels, attacks = label_mev(tables["events"], tables["pools"], tables["txs"], kinds=(kind,))
    assert labels.schema == schema.LABELS and attacks.schema == ATTACKS
    assert attacks.num_rows == labels.num_rows
    token_address = tables["tokens"].column("address").to_pylist()
    ev = tables["events"]
    ev_key = list(zip(ev.column("tx_hash").to_pylist(), ev.column("log_index").to_pylist()))
    found = []
    for lab, att in zip(labels.to_pylist(), attacks.to_pylist()):
        row = {"block": lab["block_number"], "events": tuple(ev_key[r] for r in att["event_rows"]),
               "victims": tuple(sorted(ev_key[r] for r in att["victim_event_rows"])),
               "profit": (str(int(lab["profit_raw"])), token_address[lab["profit_token"]]),
               "beneficiary": att["beneficiary"], "tx_from": att["tx_from"]}
        if kind == "jit":
            row["profit"] = tuple(sorted([row["profit"], (str(int(att["other_profit_raw"])),
                                                          token_address[att["other_token"]])]))
        found.append(row)
    return found


def _expected_row(kind: str, value: dict, inputs: dict) -> dict:
    if kind == "sandwich":
        front, back = _resolve(value["frontSwap"], inputs), _resolve(value["backSwap"], inputs)
        return {"block": front["block"]["number"], "events": (_swap_key(front), _swap_key(back)),
                "victims": tuple(sorted(_swap_key(_resolve(v, inputs)) for v in value["sandwiched"])),
                "profit": (value["profit"]["amount"], value["profit"]["asset"]["address"].lower()),
                "beneficiary": value["sandwicher"]["beneficiary"].lower(),
                "tx_from": value["sandwicher"]["sender"].lower()}
    if kind == "arbitrage":
        swaps = value["swaps"]
        route = _resolve(swaps, inputs) if isinstance(swaps, dict) else [_resolve(s, inputs) for s in swaps]
        return {"block": route[0]["block"]["number"], "events": tuple(_swap_key(s) for s in route), "victims": (),
                "profit": (value["profit"]["amount"], value["profit"]["asset"]["address"].lower()),
                "beneficiary": value["arbitrager"]["beneficiary"].lower(),
                "tx_from": value["arbitrager"]["sender"].lower()}
    deposit, withdrawal = _resolve(value["deposit"], inputs), _resolve(value["withdrawal"], inputs)
    return {"block": deposit["block"]["number"], "events": (_swap_key(deposit), _swap_key(withdrawal)),
            "victims": tuple(sorted(_swap_key(_resolve(v, inputs)) for v in value["sandwiched"])),
            "profit": tuple(sorted((d["amount"], d["asset"]["address"].lower()) for d in value["deltas"])),
            "beneficiary": value["sandwicher"]["beneficiary"].lower(),
            "tx_from": value["sandwicher"]["sender"].lower()}


def _evaluate(name: str, case: dict) -> tuple[int, int, int, list[str]]:
    """(true positives, false positives, false negatives, problems) of one fixture."""
    kind = FILES[name]
    inputs = case["inputs"]
    found = {g: _detect(kind, *lists) for g, lists in _groups(name, inputs).items()}
    tp = fp = fn = 0
    problems = []
    for exp in case["expected"]:
        of = exp["of"]
        if "value_text" in exp:   # count-only expectations: "sandwiches.length", "sandwiches[0].sandwiched.length"
            rows = next(iter(found.values()))
            want = int(exp["value_text"])
            if of.endswith("[0].sandwiched.length"):
                ok = len(rows) == 1 and len(rows[0]["victims"]) == want
                tp, fp, fn = tp + ok, fp + (len(rows) - ok), fn + (not ok)
                if not ok:
                    problems.append(f"{of}: found {rows}, expected one sandwich with {want} victim(s)")
            else:
                tp, fp, fn = tp + min(len(rows), want), fp + max(len(rows) - want, 0), fn + max(want - len(rows), 0)
                if len(rows) != want:
                    problems.append(f"{of}: found {len(rows)}, expected {want}")
            continue
        group = re.sub(r"^(sandwiches|arbitrages)", "swaps", of)
        rows = found[group if group in found else next(iter(found))]
        expected = [_expected_row(kind, v, inputs) for v in exp["value"]]
        for e in expected:
            if e in rows:
                tp += 1
            else:
                fn += 1
                problems.append(f"{of}: missed {e}")
        for r in rows:
            if r not in expected:
                fp += 1
                problems.append(f"{of}: unexpected {r}")
    return tp, fp, fn, problems


@pytest.mark.parametrize("name, case", CASES)
def test_fixture(name, case):
    _, fp, fn, problems = _evaluate(name, case)
    assert (fp, fn) == (0, 0), "\n".join(problems)


def test_precision_recall_over_all_fixtures(capsys):
    totals = {}
    for param in CASES:
        name, case = param.values
        tp, fp, fn, _ = _evaluate(name, case)
        t = totals.setdefault(FILES[name], [0, 0, 0])
        t[0], t[1], t[2] = t[0] + tp, t[1] + fp, t[2] + fn
    tp, fp, fn = (sum(t[i] for t in totals.values()) for i in range(3))
    precision, recall = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    with capsys.disabled():
        for kind, (a, b, c) in totals.items():
            print(f"\nlabeler fixtures {kind}: tp {a} fp {b} fn {c}")
        print(f"labeler fixtures all: precision {precision:.3f} recall {recall:.3f} ({tp} labels)")
    assert len(totals) == 3 and tp >= 20
    assert precision == 1.0 and recall == 1.0


def test_labels_summary_positives_are_found():
    """Every positive of labels_summary.json (txs, profit amount and asset) is among the labels found."""
    summary = json.loads((FIXTURES / "labels_summary.json").read_text())
    by_test = {}
    for param in CASES:
        name, case = param.values
        by_test[(name, case["test"])] = case
    checked = 0
    for entry in summary:
        if "txs" not in entry:
            continue
        case = by_test[(entry["file"], entry["test"])]
        kind = FILES[entry["file"]]
        hits = []
        for lists in _groups(entry["file"], case["inputs"]).values():
            tables = events_from_mev_inspect(*lists)
            labels, attacks = label_mev(tables["events"], tables["pools"], tables["txs"], kinds=(kind,))
            tokens = tables["tokens"].column("address").to_pylist()
            for lab, att in zip(labels.to_pylist(), attacks.to_pylist()):
                txs = set(att["tx_hashes"]) | set(att["victim_tx_hashes"])
                profit_ok = entry["profit_amount"] is None or (
                    str(int(lab["profit_raw"])) == entry["profit_amount"]
                    and tokens[lab["profit_token"]] == entry["profit_asset"])
                if txs == set(entry["txs"]) and lab["block_number"] in entry["blocks"] and profit_ok:
                    hits.append(lab)
        assert len(hits) == 1, entry
        checked += 1
    assert checked >= 20


def test_victims_of_lists_sandwich_victims():
    case = next(p.values[1] for p in CASES if p.values[1]["test"] == "multiple sandwiches in a single block")
    tables = events_from_mev_inspect(case["inputs"]["swaps"])
    labels, attacks = label_mev(tables["events"], tables["pools"], tables["txs"])
    sandwiches = pc.equal(labels.column("kind"), "sandwich")
    assert pc.sum(sandwiches).as_py() == 3
    victims = victims_of(attacks, labels)
    assert victims.num_rows == 3
    assert set(victims.column("tx_hash").to_pylist()) == set(labels.filter(sandwiches).column("tx_hash").to_pylist())
    assert labels.column("gas_used").to_pylist() == [
        sum(t["transaction"]["gasUsed"] for t in case["inputs"]["swaps"] if t["transaction"]["hash"].lower() in h)
        for h in attacks.column("tx_hashes").to_pylist()]


def test_row_order_does_not_matter():
    """Events given out of (block, tx, log) order give the same labels."""
    case = next(p.values[1] for p in CASES if p.values[1]["test"] == "multiple sandwiches in a single block")
    tables = events_from_mev_inspect(case["inputs"]["swaps"])
    ev = tables["events"]
    shuffled = ev.take(pa.array(np.random.default_rng(0).permutation(ev.num_rows)))
    a, _ = label_mev(ev, tables["pools"], tables["txs"])
    b, _ = label_mev(shuffled, tables["pools"], tables["txs"])
    assert a.equals(b)


def test_unknown_kind_is_refused():
    tables = events_from_mev_inspect([])
    with pytest.raises(ValueError, match="kinds"):
        label_mev(tables["events"], tables["pools"], kinds=("liquidation",))


def test_synthetic_tiny_planted_arbitrages_are_found(tiny_cache):
    from gpubt.data.store import Dataset

    from ..conftest import TINY

    data = Dataset(tiny_cache / TINY)
    events, planted = data.read("events"), data.read("labels")
    labels, _ = label_mev(events, data.pools)
    planted = planted.filter(pc.equal(planted.column("kind"), "arbitrage"))
    ours = labels.filter(pc.equal(labels.column("kind"), "arbitrage"))
    assert planted.num_rows > 0

    def by_tx(t):
        return {r["tx_hash"]: (int(r["profit_raw"]), r["profit_token"], r["pools"]) for r in t.to_pylist()}

    want, got = by_tx(planted), by_tx(ours)
    missing = {h: v for h, v in want.items() if got.get(h) != v}
    assert not missing, f"planted arbitrages not found (tx → profit, token, pools): {missing}"
    assert set(got) == set(want)   # and nothing else labeled as arbitrage in this market
