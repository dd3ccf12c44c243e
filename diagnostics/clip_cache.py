"""Per-clip feature reuse: which registered dataset row already holds a clip's features.

The source cache in :mod:`diagnostics.audio` answers "have I seen exactly this folder with
these parameters?".  When one clip of ten thousand changes (or a class folder is added) that
answer is no, and without this index every clip would be decoded again.  Here each clip's
content hash and the feature parameters map to a row of a registered dataset, so only new or
changed clips are extracted; the others are copied from the stored memmap.

The index is a small SQLite table (``NORMSCOPE_HOME/cache/clips.db``, WAL), written in one
transaction per registered dataset.  A row is only trusted while its dataset is registered and
long enough; anything else is a miss and the clip is simply extracted again.  The index is a
cache: if it cannot be opened or written, opening a source is slower, never wrong.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from contextlib import closing

import numpy as np

from .errors import NormScopeError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS clips (
    params    TEXT NOT NULL,     -- hash of the feature parameters
    hash      TEXT NOT NULL,     -- SHA-256 of the clip's bytes
    dataset   TEXT NOT NULL,     -- registered dataset id holding the features
    row       INTEGER NOT NULL,  -- row of that dataset's X
    truncated INTEGER NOT NULL,  -- 1 if the file was cut short when it was decoded
    PRIMARY KEY (params, hash)
) WITHOUT ROWID
"""


def params_key(params_key_dict: dict) -> str:
    """Short stable hash of a ``FeatureParams.key()`` dict."""
    blob = json.dumps(params_key_dict, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _connect() -> sqlite3.Connection | None:
    from .registry import _subdir

    con = None
    try:
        con = sqlite3.connect(_subdir("cache") / "clips.db", timeout=10)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute(_SCHEMA)
        return con
    except (sqlite3.Error, NormScopeError, OSError):
        if con is not None:
            con.close()
        return None


def lookup(params: dict, hashes: dict[int, str]) -> dict[int, tuple[str, int, bool]]:
    """Stored rows for the clips whose hash is known.

    Parameters
    ----------
    params : dict
        ``FeatureParams.key()``.
    hashes : dict
        ``{clip index: content hash}``.

    Returns
    -------
    dict
        ``{clip index: (dataset id, row, truncated)}`` for the clips found in a dataset that
        is still registered and still has that row.
    """
    from .registry import dataset_meta, is_registered

    if not hashes:
        return {}
    con = _connect()
    if con is None:
        return {}
    pk = params_key(params)
    found: dict[str, tuple[str, int, bool]] = {}
    wanted = sorted(set(hashes.values()))
    try:
        with closing(con):
            for i in range(0, len(wanted), 500):  # stay under SQLite's variable limit
                part = wanted[i:i + 500]
                q = ("SELECT hash, dataset, row, truncated FROM clips WHERE params = ? AND hash IN "
                     f"({','.join('?' * len(part))})")
                for h, ds, row, trunc in con.execute(q, [pk, *part]):
                    found[h] = (ds, int(row), bool(trunc))
    except sqlite3.Error:
        return {}
    sizes: dict[str, int] = {}
    for ds in {v[0] for v in found.values()}:
        try:
            sizes[ds] = int(dataset_meta(ds)["n"]) if is_registered(ds) else 0
        except (NormScopeError, KeyError, TypeError, ValueError):
            sizes[ds] = 0
    return {i: found[h] for i, h in hashes.items()
            if h in found and 0 <= found[h][1] < sizes.get(found[h][0], 0)}


def remember(params: dict, ident: str, hashes: list[str], truncated: list[bool]) -> None:
    """Record that row ``k`` of dataset ``ident`` holds the clip with ``hashes[k]``."""
    con = _connect()
    if con is None:
        return
    pk = params_key(params)
    rows = [(pk, h, ident, k, int(t)) for k, (h, t) in enumerate(zip(hashes, truncated))]
    try:
        with closing(con), con:
            con.executemany("INSERT OR REPLACE INTO clips VALUES (?, ?, ?, ?, ?)", rows)
    except sqlite3.Error:
        pass  # a cache we cannot write only costs time next open


def forget(ident: str) -> None:
    """Drop the rows that point at dataset ``ident`` (it was deleted)."""
    con = _connect()
    if con is None:
        return
    try:
        with closing(con), con:
            con.execute("DELETE FROM clips WHERE dataset = ?", (ident,))
    except sqlite3.Error:
        pass  # stale rows are misses anyway (lookup checks the dataset)


def gather(found: dict[int, tuple[str, int, bool]], dest: dict[int, int], out: np.ndarray) -> None:
    """Copy the stored features of clip ``i`` into ``out[dest[i]]`` for every ``i`` in ``dest``.

    Reads each dataset's memmap once, rows in ascending order (sequential disk access).
    """
    from .registry import open_dataset

    by_ds: dict[str, list[tuple[int, int]]] = {}
    for i, k in dest.items():
        ds, row, _ = found[i]
        by_ds.setdefault(ds, []).append((row, k))
    for ds, pairs in by_ds.items():
        pairs.sort()
        X = open_dataset(ds).X
        rows = np.fromiter((r for r, _ in pairs), np.int64, len(pairs))
        to = np.fromiter((k for _, k in pairs), np.int64, len(pairs))
        for s in range(0, len(rows), 4096):  # bounded temporaries for big collections
            out[to[s:s + 4096]] = X[rows[s:s + 4096]]
