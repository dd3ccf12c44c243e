"""zarr and HDF5 sources: the same statistics as the .npy copy, bad input in one sentence,
registration in place by content id."""

from __future__ import annotations

import os
import pickle
import stat

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")
zarr = pytest.importorskip("zarr")

from chunk_helpers import ALL, offset_data, two_pass, write_offset_copies  # noqa: E402
from diagnostics.data.chunked import ChunkedArray, parse_spec  # noqa: E402
from diagnostics.data.ingest import load_dataset, open_request  # noqa: E402
from diagnostics.data.store import dataset_meta  # noqa: E402
from diagnostics.errors import NormScopeError  # noqa: E402
from diagnostics.stats.summary import dataset_stats  # noqa: E402


@pytest.fixture
def copies(tmp_path, rng):
    """One array as .npy, a zarr group with y, a bare zarr array and an HDF5 dataset with a
    sibling y."""
    X = (100 + 3 * rng.standard_normal((700, 9, 11))).astype(np.float32)
    X[:, 0, 0] = 0.0  # a constant pixel
    y = rng.integers(0, 3, 700)
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", y)
    g = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    g.create_array("X", data=X, chunks=(128, 9, 11))
    g.create_array("y", data=y)
    zarr.create_array(str(tmp_path / "a.zarr"), data=X, chunks=(100, 9, 11))
    with h5py.File(tmp_path / "f.h5", "w") as f:
        grp = f.create_group("audio/train")
        grp.create_dataset("X", data=X, chunks=(64, 9, 11), compression="gzip")
        grp.create_dataset("labels", data=y)
    return tmp_path


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(b) & (b != 0)
    return float(np.max(np.abs(a[ok] / b[ok] - 1)))


@pytest.mark.parametrize("spec,labels", [("g.zarr", None), ("g.zarr/X", None),
                                         ("a.zarr", "y.npy"), ("f.h5:/audio/train/X", None),
                                         ("f.h5:audio/train/X", "y.npy")])
@pytest.mark.parametrize("on", ["train", "all"])
def test_stats_equal_npy(copies, spec, labels, on, monkeypatch):
    monkeypatch.chdir(copies)
    ref = dataset_stats(load_dataset("x.npy", labels="y.npy"), on=on)
    ds = load_dataset(spec, labels=labels)
    assert isinstance(ds.X, ChunkedArray) and ds.X.shape == (700, 9, 11)
    st = dataset_stats(ds, on=on)
    assert st.n == ref.n
    assert _rel(st.mean, ref.mean) <= 1e-12
    assert _rel(st.std, ref.std) <= 1e-12
    np.testing.assert_array_equal(st.constant, ref.constant)
    np.testing.assert_array_equal(st.sample, ref.sample)
    np.testing.assert_allclose(st.class_means, ref.class_means, rtol=1e-12)
    np.testing.assert_array_equal(st.min, ref.min)
    np.testing.assert_array_equal(st.max, ref.max)


def test_rows_indexing_matches_numpy(copies, rng):
    ds = load_dataset(str(copies / "f.h5:/audio/train/X"))
    X = np.load(copies / "x.npy")
    rows = rng.integers(0, 700, 50)  # unsorted, repeated
    np.testing.assert_array_equal(ds.X[rows], X[rows])
    np.testing.assert_array_equal(ds.X[3:650], X[3:650])
    np.testing.assert_array_equal(ds.X[5], X[5])
    np.testing.assert_array_equal(np.asarray(ds.X), X)
    again = pickle.loads(pickle.dumps(ds.X))  # reopens by path (workers)
    np.testing.assert_array_equal(again[rows], X[rows])


@pytest.mark.parametrize("make,match", [
    (lambda p: zarr.create_array(str(p / "bad.zarr"), data=np.zeros((5, 4))), "shape \\(5, 4\\)"),
    (lambda p: zarr.create_array(str(p / "bad.zarr"), data=np.zeros((5, 4, 3), complex)),
     "complex128.*real numbers"),
    (lambda p: None, "does not exist"),
])
def test_bad_zarr_one_sentence(tmp_path, make, match):
    make(tmp_path)
    with pytest.raises(NormScopeError, match=match):
        load_dataset(str(tmp_path / "bad.zarr"))


def test_bad_hdf5_and_missing_labels(copies):
    with pytest.raises(NormScopeError, match="has no dataset"):
        load_dataset(str(copies / "f.h5:/audio/nope"))
    with pytest.raises(NormScopeError, match="has no dataset named X"):
        load_dataset(str(copies / "f.h5"))
    with pytest.raises(NormScopeError, match="labels file .* does not exist"):
        load_dataset(str(copies / "a.zarr"), labels=str(copies / "missing.npy"))
    with pytest.raises(NormScopeError, match="700 examples"):
        np.save(copies / "short.npy", np.arange(9))
        load_dataset(str(copies / "a.zarr"), labels=str(copies / "short.npy"))
    assert load_dataset(str(copies / "a.zarr")).y is None  # labels are optional for stats


def test_parse_spec(tmp_path, copies):
    assert parse_spec(str(copies / "f.h5:/audio/train/X")).key == "/audio/train/X"
    assert parse_spec(str(copies / "g.zarr/X")).path == str(copies / "g.zarr")
    assert parse_spec(str(copies / "x.npy")) is None


def test_read_only_source_registered_in_place(copies, home):
    ro = copies / "ro.zarr"
    os.rename(copies / "g.zarr", ro)
    for p in [ro, *ro.rglob("*")]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    ident = open_request("path", path="ro.zarr", root=copies)
    meta = dataset_meta(ident)
    assert meta["reference"]["path"] == str(ro)
    assert not (home / "datasets" / ident / "X.npy").exists()  # nothing copied
    ds = load_dataset(ident)
    assert isinstance(ds.X, ChunkedArray)
    np.testing.assert_array_equal(ds.X[:], np.load(copies / "x.npy"))
    # A writable source is copied instead (it could change under a reference).
    ident2 = open_request("path", path="f.h5:/audio/train/X", root=copies)
    assert ident2 == ident  # same content, same id
    for p in [ro, *ro.rglob("*")]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)


def test_writable_source_copied(copies, home):
    ident = open_request("path", path="f.h5:/audio/train/X", root=copies)
    assert "reference" not in dataset_meta(ident)
    assert (home / "datasets" / ident / "X.npy").is_file()


def test_path_outside_root_refused(copies, tmp_path_factory):
    other = tmp_path_factory.mktemp("root")
    with pytest.raises(NormScopeError):
        open_request("path", path=str(copies / "g.zarr"), root=other)


@pytest.fixture(scope="module")
def offset_copies(tmp_path_factory):
    """Offset data (chunk_helpers.offset_data) as .npy, zarr (zstd and uncompressed), HDF5
    (unfiltered and gzip): chunks of 50 examples.  Written once: the tests only read it."""
    X = offset_data(np.random.default_rng(20240611))
    return write_offset_copies(tmp_path_factory.mktemp("offset"), X, more=True), X


def test_offset_data_same_numbers_in_every_copy(offset_copies, monkeypatch):
    """Mean 1e4, std 0.01: every copy, in process, within 1e-12 of a float64 two-pass.

    Before the running means were kept relative to a shared origin, Chan's merges of
    absolute means near 1e4 left ~1e-11 in the std (a fold every 268 rows here); a fold
    every 20 rows makes that loss certain to show."""
    from diagnostics.stats import stream
    from diagnostics.stats.moments import compute_stats

    monkeypatch.setattr(stream, "FOLD_BYTES", 20 * 8 * 60 * 130)
    folder, X = offset_copies
    mu, sd = two_pass(X)
    for spec in ALL:
        st = compute_stats(load_dataset(str(folder / spec)).X, engine="numpy")
        np.testing.assert_allclose(st.mean, mu, rtol=1e-12, atol=0, err_msg=spec)
        np.testing.assert_allclose(st.std, sd, rtol=1e-12, atol=0, err_msg=spec)
    naive = np.sqrt(np.maximum((X * X).mean(0) - X.mean(0) ** 2, 0))  # float32, one pass
    assert _rel(naive, sd) > 1e-2


def test_offset_data_default_blocks(offset_copies):
    """The same at the engine's default block and fold sizes (a fold every 268 rows)."""
    folder, X = offset_copies
    for spec in ALL:
        ds = load_dataset(str(folder / spec))
        st = dataset_stats(ds, on="all")
        mu, sd = two_pass(X)
        np.testing.assert_allclose(st.mean, mu, rtol=1e-12, atol=0, err_msg=spec)
        np.testing.assert_allclose(st.std, sd, rtol=1e-12, atol=0, err_msg=spec)
