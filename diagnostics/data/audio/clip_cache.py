"""Per-clip feature reuse: which registered dataset row already holds a clip's features.

The source cache in :mod:`diagnostics.data.audio.loader` answers "have I seen exactly this folder with
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

from ...config import subdir
from ...errors import NormScopeError
from ..store import open_dataset

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


def _connect(*, retry: bool = True) -> sqlite3.Connection | None:
    con = None
    try:
        path = subdir("cache") / "clips.db"
    except NormScopeError:
        return None
    try:
        con = sqlite3.connect(path, timeout=10)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute(_SCHEMA)
        return con
    except sqlite3.DatabaseError:
        if con is not None:
            con.close()
        if not retry:
            return None
        # Not a database (damaged, or overwritten): it is only a cache, so start a new one.
        for suffix in ("", "-wal", "-shm"):
            try:
                path.with_name(path.name + suffix).unlink(missing_ok=True)
            except OSError:
                return None
        return _connect(retry=False)
    except (sqlite3.Error, OSError):
        if con is not None:
            con.close()
        return None


def lookup(params: dict, hashes: dict[int, str], shape: tuple[int, int]
           ) -> tuple[dict[int, tuple[str, int, bool]], dict[str, np.ndarray]]:
    """Stored rows for the clips whose hash is known.

    Parameters
    ----------
    params : dict
        What identifies the features (``FeatureParams.key()`` plus a cache version).
    hashes : dict
        ``{clip index: content hash}``.
    shape : (H, W)
        The shape of one example; a stored dataset of another shape is not used.

    Returns
    -------
    found : dict
        ``{clip index: (dataset id, row, truncated)}`` for the clips held by a dataset that
        opens cleanly, has that row and the right shape.
    arrays : dict
        ``{dataset id: X}``, the memmaps opened to check them; :func:`gather` reads these,
        so a dataset deleted in between is still read whole.
    """
    if not hashes:
        return {}, {}
    con = _connect()
    if con is None:
        return {}, {}
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
        return {}, {}
    arrays: dict[str, np.ndarray] = {}
    for ds in {v[0] for v in found.values()}:
        try:
            X = open_dataset(ds).X  # checks meta, file size, dtype and dimensions
        except NormScopeError:
            continue  # deleted or damaged: those clips are extracted again
        if tuple(X.shape[1:]) == tuple(shape):
            arrays[ds] = X
    out = {}
    for i, h in hashes.items():
        hit = found.get(h)
        if hit is not None and hit[0] in arrays and 0 <= hit[1] < arrays[hit[0]].shape[0]:
            out[i] = hit
    return out, arrays


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


def gather(found: dict[int, tuple[str, int, bool]], arrays: dict[str, np.ndarray],
           dest: dict[int, int], out: np.ndarray) -> None:
    """Copy the stored features of clip ``i`` into ``out[dest[i]]`` for every ``i`` in ``dest``.

    ``arrays`` are the memmaps :func:`lookup` opened.  Reads each dataset once, rows in
    ascending order (sequential disk access).
    """
    by_ds: dict[str, list[tuple[int, int]]] = {}
    for i, k in dest.items():
        ds, row, _ = found[i]
        by_ds.setdefault(ds, []).append((row, k))
    for ds, pairs in by_ds.items():
        pairs.sort()
        X = arrays[ds]
        rows = np.fromiter((r for r, _ in pairs), np.int64, len(pairs))
        to = np.fromiter((k for _, k in pairs), np.int64, len(pairs))
        for s in range(0, len(rows), 4096):  # bounded temporaries for big collections
            out[to[s:s + 4096]] = X[rows[s:s + 4096]]
