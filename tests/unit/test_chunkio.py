"""Chunks read without the library (raw rows, self-describing codecs) give exactly what zarr
and h5py give, for every layout we read ourselves and every one we leave to the library."""

from __future__ import annotations

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")
zarr = pytest.importorskip("zarr")

from zarr.codecs import BloscCodec, Crc32cCodec, GzipCodec  # noqa: E402

from diagnostics.data.chunked import open_chunked  # noqa: E402
from diagnostics.stats.moments import compute_stats  # noqa: E402

N, H, W = 203, 6, 7  # the last chunk of 40 rows holds only 3
CH = (40, H, W)


def _zarr(**kw):
    def make(path, X):
        zarr.create_array(str(path / "a.zarr"), data=X, chunks=kw.pop("chunks", CH), **kw)
        return str(path / "a.zarr")
    return make


def _h5(**kw):
    def make(path, X):
        with h5py.File(path / "a.h5", "w") as f:
            f.create_dataset("X", data=X, **kw)
        return str(path / "a.h5:/X")
    return make


def _zarr_lz4(path, X):
    from zarr.codecs.numcodecs import LZ4

    zarr.create_array(str(path / "a.zarr"), data=X, chunks=CH, compressors=LZ4())
    return str(path / "a.zarr")


def _zarr_v2(compressor):
    def make(path, X):
        import numcodecs

        zarr.create_array(str(path / "a.zarr"), data=X, chunks=CH, zarr_format=2,
                          compressors=None if compressor is None else numcodecs.get_codec(
                              {"id": compressor}))
        return str(path / "a.zarr")
    return make


def _zarr_in_group(path, X):
    g = zarr.open_group(str(path / "g.zarr"), mode="w")
    g.create_array("sub/X", data=X, chunks=CH, compressors=None)
    return str(path / "g.zarr/sub/X")


def _zarr_missing_chunk(path, X):
    X[40:80] = 0  # all fill value: zarr does not write the chunk
    zarr.create_array(str(path / "a.zarr"), data=X, chunks=CH, compressors=None)
    assert not (path / "a.zarr/c/1/0/0").exists()
    return str(path / "a.zarr")


def _four_d(path, X):  # (N, H, W, 1) raw zarr and (N, 1, H, W) gzip HDF5: the same rows
    zarr.create_array(str(path / "a.zarr"), data=X[..., None], chunks=(*CH, 1), compressors=None)
    return str(path / "a.zarr")


def _four_d_h5(path, X):
    with h5py.File(path / "a.h5", "w") as f:
        f.create_dataset("X", data=X[:, None], chunks=(CH[0], 1, H, W), compression="gzip")
    return str(path / "a.h5:/X")


SOURCES = {  # name: (writer, kind read)
    "zarr raw": (_zarr(compressors=None), "raw"),
    "zarr zstd": (_zarr(), "codec"),
    "zarr blosc": (_zarr(compressors=BloscCodec()), "codec"),
    "zarr gzip": (_zarr(compressors=GzipCodec()), "codec"),
    "zarr lz4": (_zarr_lz4, "codec"),
    "zarr v2 raw": (_zarr_v2(None), "raw"),
    "zarr v2 zstd": (_zarr_v2("zstd"), "codec"),
    "zarr in a group": (_zarr_in_group, "raw"),
    "zarr missing chunk": (_zarr_missing_chunk, "raw"),
    "zarr crc32c": (_zarr(compressors=[Crc32cCodec()]), "library"),
    "zarr sharded": (_zarr(chunks=(20, H, W), shards=CH), "library"),
    "zarr chunks split H": (_zarr(chunks=(40, 3, W), compressors=None), "library"),
    "hdf5 chunked": (_h5(chunks=CH), "raw"),
    "hdf5 contiguous": (_h5(), "raw"),
    "hdf5 gzip": (_h5(chunks=CH, compression="gzip"), "library"),
    "hdf5 shuffle": (_h5(chunks=CH, shuffle=True), "library"),
    "zarr (N, H, W, 1)": (_four_d, "raw"),
    "hdf5 (N, 1, H, W) gzip": (_four_d_h5, "library"),
}


@pytest.fixture
def data(rng):
    return (50 + rng.standard_normal((N, H, W))).astype(np.float32)


@pytest.mark.filterwarnings("ignore:Numcodecs codecs are not in the Zarr")  # lz4: we know
@pytest.mark.parametrize("name", SOURCES)
def test_rows_and_stats_as_the_library_reads_them(tmp_path, data, rng, name):
    make, kind = SOURCES[name]
    X = open_chunked(make(tmp_path, data)).X
    assert X.layout().kind == kind
    if name == "zarr missing chunk":
        assert X.layout().files[1] is None  # the library supplies the fill value
    np.testing.assert_array_equal(X[:], data)
    np.testing.assert_array_equal(X[35:123], data[35:123])  # across chunk edges
    np.testing.assert_array_equal(X[201:203], data[201:203])  # the short last chunk
    rows = rng.integers(0, N, 60)  # unsorted, repeated
    np.testing.assert_array_equal(X[rows], data[rows])
    cr = X.chunk_rows
    for k in range(-(-N // cr)):
        np.testing.assert_array_equal(X.read_chunk(k, X.buffers()), data[k * cr : k * cr + cr])
    ref = compute_stats(data, engine="numpy")
    train = np.sort(rng.choice(N, 150, replace=False))
    for idx in (None, train):
        st = compute_stats(X, indices=idx, engine="numpy", chunk_rows=16)
        ref = compute_stats(data, indices=idx, engine="numpy", chunk_rows=16)
        np.testing.assert_allclose(st.mean, ref.mean, rtol=1e-14)
        np.testing.assert_allclose(st.std, ref.std, rtol=1e-13)
        np.testing.assert_array_equal(st.min, ref.min)
        np.testing.assert_array_equal(st.sample, ref.sample)


def test_big_endian_left_to_the_library(tmp_path):
    X = np.arange(N * H * W, dtype=">f4").reshape(N, H, W)
    zarr.create_array(str(tmp_path / "a.zarr"), data=X, chunks=CH, compressors=None)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f.create_dataset("X", data=X, chunks=CH)
    for spec in (tmp_path / "a.zarr", f"{tmp_path / 'a.h5'}:/X"):
        A = open_chunked(str(spec)).X
        if A.dtype.byteorder == ">":
            assert A.layout().kind == "library"
        np.testing.assert_array_equal(A[:], X)


def test_a_chunk_file_cut_short_is_one_sentence(tmp_path, data):
    from diagnostics.errors import NormScopeError

    X = open_chunked(_zarr(compressors=None)(tmp_path, data)).X
    X.layout()
    with open(tmp_path / "a.zarr/c/2/0/0", "r+b") as fh:
        fh.truncate(100)
    with pytest.raises(NormScopeError, match="became shorter"):
        compute_stats(X, engine="numpy")
