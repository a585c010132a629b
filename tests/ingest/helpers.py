"""Comparisons shared by the ingestion tests."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from gpubt.data.store import PARTITIONED, Dataset


def dataset_tables(path) -> dict:
    """Every table of a dataset (partitioned ones concatenated) plus router_calls and the manifest's partitions."""
    ds = Dataset(path)
    out = {"tokens": ds.tokens, "pools": ds.pools, "partitions": ds.partitions,
           "hashes": json.loads((Path(path) / "manifest.json").read_text())["params"].get("hashes")}
    for name in PARTITIONED:
        out[name] = ds.read(name)
    out["router_calls"] = pq.read_table(Path(path) / "router_calls")
    return out


def assert_same_dataset(a, b) -> None:
    ta, tb = dataset_tables(a), dataset_tables(b)
    for name in ta:
        va, vb = ta[name], tb[name]
        same = va.equals(vb) if hasattr(va, "equals") else va == vb
        assert same, f"{name} differs between {a} and {b}"


def snapshot_files(path) -> dict:
    """path → bytes of every file under a dataset (to prove nothing changed)."""
    root = Path(path)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
