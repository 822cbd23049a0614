"""A LoadResult in one parquet file: the messages as the table, the rest in its metadata.

Any parquet reader sees one row per message; ``LoadResult.read_parquet`` also gets
back the connections and a scenario's iterations (Arrow IPC streams in the
metadata), the checks, histograms, parameters and versions (JSON). Files written
before scenarios existed (format 1, no ``step`` column) still read.
"""

from __future__ import annotations

import base64
import json
import os
from typing import TYPE_CHECKING, Any, Protocol

from nbstream.loadtest.frames import checks_frame, checks_of
from nbstream.loadtest.histograms import decode_histogram

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    from hdrh.histogram import HdrHistogram

FORMAT = 2
_METADATA_KEY = b"nbstream.loadtest"
_CONNECTIONS_KEY = b"nbstream.connections"
_ITERATIONS_KEY = b"nbstream.iterations"


class Stored(Protocol):
    """What is written: a ``LoadResult``."""

    messages: pd.DataFrame
    connections: pd.DataFrame
    iterations: pd.DataFrame
    checks: pd.DataFrame
    histograms: dict[str, HdrHistogram]
    parameters: dict[str, Any]
    started_at: pd.Timestamp
    versions: dict[str, str]


def write(result: Stored, path: str | os.PathLike[str]) -> None:
    """Write ``result`` to ``path`` (see :meth:`LoadResult.to_parquet`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(result.messages, preserve_index=False)
    info = {
        "format": FORMAT,
        "parameters": result.parameters,
        "started_at": result.started_at.isoformat(),
        "versions": result.versions,
        "histograms": {k: h.encode().decode("ascii") for k, h in result.histograms.items()},
        "checks": checks_of(result.checks),
    }
    metadata = {
        **(table.schema.metadata or {}),
        _METADATA_KEY: json.dumps(info).encode(),
        _CONNECTIONS_KEY: _encoded(pa.Table.from_pandas(result.connections,
                                                        preserve_index=False)),
        _ITERATIONS_KEY: _encoded(pa.Table.from_pandas(result.iterations,
                                                       preserve_index=False)),
    }
    pq.write_table(table.replace_schema_metadata(metadata), path)


def read(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The keyword arguments of ``LoadResult(...)`` stored in ``path``.

    Raises:
        ValueError: if the file was not written by ``LoadResult.to_parquet``.
    """
    import pandas as pd
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    metadata = table.schema.metadata or {}
    if _METADATA_KEY not in metadata:
        raise ValueError(f"{os.fspath(path)!r} is not a file written by LoadResult.to_parquet")
    info = json.loads(metadata[_METADATA_KEY])
    messages = table.to_pandas()
    if "step" not in messages:
        messages["step"] = pd.array([None] * len(messages), dtype="string")
    iterations = (_decoded(metadata[_ITERATIONS_KEY]) if _ITERATIONS_KEY in metadata
                  else None)
    return {
        "messages": messages,
        "connections": _decoded(metadata[_CONNECTIONS_KEY]),
        "histograms": {k: decode_histogram(v.encode("ascii"))
                       for k, v in info["histograms"].items()},
        "parameters": info["parameters"],
        "started_at": pd.Timestamp(info["started_at"]),
        "versions": info["versions"],
        "iterations": iterations,
        "checks": checks_frame({k: (p, f) for k, (p, f) in info.get("checks", {}).items()}),
    }


def _encoded(table: pa.Table) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return base64.b64encode(sink.getvalue().to_pybytes())


def _decoded(data: bytes) -> pd.DataFrame:
    import pyarrow as pa

    frame: pd.DataFrame = pa.ipc.open_stream(base64.b64decode(data)).read_all().to_pandas()
    return frame
