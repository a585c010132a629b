"""ParquetStream: a file streamed table by table appears whole on success and not at all after an error."""
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gpubt.data.store import ParquetStream


def test_stream_writes_whole_file_or_nothing(tmp_path):
    first = pa.table({"a": pa.array([1, 2], pa.int64())})
    with ParquetStream(tmp_path / "ok.parquet") as out:  # schema from the first table
        out.write(first)
        out.write(pa.table({"a": pa.array([], pa.int64())}))
        out.write(pa.table({"a": pa.array([3], pa.int64())}))
        assert not (tmp_path / "ok.parquet").exists()  # only the temp file until closed
    assert pq.read_table(tmp_path / "ok.parquet").column("a").to_pylist() == [1, 2, 3]

    with pytest.raises(RuntimeError):
        with ParquetStream(tmp_path / "bad.parquet") as out:
            out.write(first)
            raise RuntimeError("the producer failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.parquet"]

    with ParquetStream(tmp_path / "empty.parquet", first.schema):  # nothing written: an empty file of the schema
        pass
    assert pq.read_table(tmp_path / "empty.parquet").equals(first.schema.empty_table())
