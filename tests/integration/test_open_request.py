"""diagnostics.data.ingest.open_request: the app's open and upload forms, without the app."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest

from diagnostics.data import store
from diagnostics.data.ingest import open_request
from diagnostics.errors import NormScopeError


@pytest.fixture
def root(tmp_path, home, rng):
    """A data root holding x.npy (40 x 5 x 7) and its labels y.npy."""
    np.save(tmp_path / "x.npy", rng.gamma(2.0, 1.0, (40, 5, 7)).astype(np.float32))
    np.save(tmp_path / "y.npy", np.arange(40) % 2)
    return tmp_path


def test_path_is_registered_once_and_listed(root):
    ident = open_request("path", path="x.npy", labels="y.npy", root=root)
    assert store.is_registered(ident) and len(ident) == 12
    meta = store.dataset_meta(ident)
    assert meta["source"] == "server file x.npy" and meta["has_labels"]
    assert open_request("path", path="x.npy", labels="y.npy", root=root) == ident
    assert [r["id"] for r in store.list_datasets()] == [ident]
    # An empty labels field means "no labels": another dataset.
    other = open_request("path", path="x.npy", labels="", root=root)
    assert other != ident and not store.dataset_meta(other)["has_labels"]


@pytest.mark.parametrize("kwargs, words", [
    ({"path": "  "}, "type the path"),
    ({"path": "../../etc/passwd"}, "outside the data root"),
    ({"path": "nosuch.npy"}, "does not exist"),
])
def test_bad_path_registers_nothing(root, kwargs, words):
    with pytest.raises(NormScopeError, match=words):
        open_request("path", root=root, **kwargs)
    assert store.list_datasets() == []


def test_uploads_of_npz_and_npy_with_labels(home, rng):
    X = rng.gamma(2.0, 1.0, (30, 4, 6)).astype(np.float32)
    buf = io.BytesIO()
    np.savez(buf, X=X, y=np.arange(30) % 3)
    a = open_request("upload", name="mine.npz", data=buf.getvalue())
    assert store.open_dataset(a).shape == (4, 6)
    xb, yb = io.BytesIO(), io.BytesIO()
    np.save(xb, X)
    np.save(yb, np.arange(30) % 3)
    b = open_request("upload", name="mine.npy", data=xb.getvalue(), labels=yb.getvalue())
    assert store.open_dataset(b).y is not None


@pytest.mark.parametrize("kwargs, words", [
    ({"name": "evil.npy", "data": pickle.dumps({"a": 1})}, "pickle"),
    ({"name": "x.npy", "data": None}, "choose a file"),
    ({"name": "x.zip", "data": b"not a zip"}, "not a readable zip"),
])
def test_bad_upload_registers_nothing(home, kwargs, words):
    with pytest.raises(NormScopeError, match=words):
        open_request("upload", **kwargs)
    assert store.list_datasets() == []


def test_unknown_kind_is_refused(home):
    with pytest.raises(NormScopeError, match="kind 'url'"):
        open_request("url", path="x")
