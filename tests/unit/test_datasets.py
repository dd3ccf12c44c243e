"""Loaders, layouts, splits, and every bad input of issue 2 (refused with one sentence)."""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import numpy as np
import pytest

from diagnostics.data.dataset import Dataset, encode_labels, split_indices
from diagnostics.data.arrays import load_array_file
from diagnostics.data.ingest import load_dataset
from diagnostics.errors import NormScopeError
from diagnostics.stats.findings import find
from diagnostics.stats.summary import dataset_stats


class Evil:
    """Unpickling this creates a marker file: proof of whether anything unpickled it."""

    marker: str = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def evil(tmp_path):
    marker = tmp_path / "UNPICKLED"
    Evil.marker = str(marker)
    # Self-check: the payload really fires when someone does unpickle it.
    pickle.loads(pickle.dumps(Evil()))
    assert marker.exists()
    marker.unlink()
    return marker


@pytest.fixture
def X(rng) -> np.ndarray:
    return rng.exponential(2.0, (40, 6, 7)).astype(np.float32)


# --- layouts and formats ----------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["nhw", "nhw1", "n1hw"])
def test_layouts(tmp_path, X, layout):
    arr = {"nhw": X, "nhw1": X[..., None], "n1hw": X[:, None]}[layout]
    path = tmp_path / "x.npy"
    np.save(path, arr)
    ds = load_array_file(path)
    assert isinstance(ds, Dataset)
    assert ds.X.shape == (40, 6, 7) and ds.shape == (6, 7) and ds.n == 40
    np.testing.assert_array_equal(ds.X, X)
    assert isinstance(ds.X, np.memmap) and not ds.X.flags.writeable  # mapped, never copied
    assert ds.y is None and ds.class_names == () and ds.name == "x.npy"


def test_npy_with_labels_file(tmp_path, X):
    np.save(tmp_path / "x.npy", X)
    names = np.array(["dog", "cat", "bird", "cat"] * 10)
    np.save(tmp_path / "y.npy", names)
    ds = load_array_file(tmp_path / "x.npy", tmp_path / "y.npy")
    assert ds.class_names == ("bird", "cat", "dog")
    np.testing.assert_array_equal(np.array(ds.class_names)[ds.y], names)
    assert ds.y.dtype == np.int64
    # The labels are part of the identity: other labels, other id.
    plain = load_array_file(tmp_path / "x.npy")
    assert ds.id != plain.id


@pytest.mark.parametrize("xkey, ykey", [("X", "y"), ("x", "labels")])
def test_npz_keys_and_memmap(tmp_path, X, xkey, ykey):
    path = tmp_path / "d.npz"
    y = np.arange(40) % 3
    np.savez(path, **{xkey: X, ykey: y})
    ds = load_array_file(path)
    np.testing.assert_array_equal(ds.X, X)
    np.testing.assert_array_equal(ds.y, y)
    assert ds.class_names == ("0", "1", "2")
    assert isinstance(ds.X, np.memmap)  # uncompressed members are mapped in place


def test_compressed_npz_still_loads(tmp_path, X):
    path = tmp_path / "d.npz"
    np.savez_compressed(path, X=X[:, None], y=np.arange(40) % 2)
    ds = load_array_file(path)
    # Inflated into an anonymous temporary file and mapped from there, never held in memory.
    assert isinstance(ds.X, np.memmap) and not ds.X.flags.writeable
    assert ds.X.dtype == np.float32 and ds.X.shape == (40, 6, 7)
    np.testing.assert_array_equal(ds.X, X)
    assert ds.y.tolist() == (np.arange(40) % 2).tolist()


def test_npz_without_labels_and_other_dtypes(tmp_path, X):
    np.savez_compressed(tmp_path / "a.npz", X=X.astype(np.float64))
    ds = load_array_file(tmp_path / "a.npz")
    assert ds.y is None and ds.X.dtype == np.float64  # float64 is kept (issue 9, item 8)
    np.savez(tmp_path / "b.npz", X=(X * 10).astype(np.int16))
    ds = load_array_file(tmp_path / "b.npz")  # mapped as int16: statistics read any real dtype
    np.testing.assert_allclose(dataset_stats(ds, on="all").mean,
                               (X * 10).astype(np.int16).mean(0), rtol=1e-12)


def test_file_id_is_stable_and_changes_with_content(tmp_path, X):
    path = tmp_path / "x.npy"
    np.save(path, X)
    a, b = load_array_file(path).id, load_array_file(path).id
    assert a == b and a.startswith("f")
    time.sleep(0.01)
    np.save(path, X[:30])
    assert load_array_file(path).id != a


def test_builtins():
    demo = load_dataset("demo")
    assert demo.X.shape == (1200, 60, 130) and demo.X.dtype == np.float32
    assert demo.id == "demo" and demo.row_origin == "lower" and len(demo.class_names) == 6
    assert not demo.X.flags.writeable
    again = load_dataset("demo")
    np.testing.assert_array_equal(demo.X, again.X)  # deterministic
    np.testing.assert_array_equal(demo.y, again.y)
    digits = load_dataset("digits")
    assert digits.X.shape == (1797, 8, 8) and digits.row_origin == "upper"
    assert digits.class_names == tuple(str(i) for i in range(10))


def test_digits_read_without_scikit_learn_equal_load_digits():
    """The digits are read from scikit-learn's file without importing it (a fresh process,
    e.g. a training worker, saves about a second): the same numbers as ``load_digits``."""
    import subprocess
    import sys

    from sklearn.datasets import load_digits

    d = load_digits()
    digits = load_dataset("digits")
    assert digits.X.dtype == np.float32 and not digits.X.flags.writeable
    np.testing.assert_array_equal(digits.X, d.images.astype(np.float32))
    np.testing.assert_array_equal(digits.y, d.target)
    assert digits.y.dtype == np.int64
    assert digits.class_names == tuple(str(c) for c in d.target_names)
    code = ("import sys; from diagnostics.data.ingest import load_dataset; "
            "load_dataset('digits'); print('sklearn' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parents[2], timeout=60)
    assert p.returncode == 0 and p.stdout.strip() == "False", p.stderr[-2000:]


# --- split ------------------------------------------------------------------------------------

def test_split_partition_determinism_and_stratification(rng):
    y = np.repeat(np.arange(5), [100, 40, 20, 7, 3])
    y = rng.permutation(y)
    s = split_indices(len(y), y, seed=0)
    all_idx = np.concatenate([s.train, s.val, s.test])
    assert np.array_equal(np.sort(all_idx), np.arange(len(y)))  # a partition
    for part in (s.train, s.val, s.test):
        assert part.dtype == np.int64 and np.all(np.diff(part) > 0)
    again = split_indices(len(y), y, seed=0)
    for a, b in zip((s.train, s.val, s.test), (again.train, again.val, again.test)):
        np.testing.assert_array_equal(a, b)
    other = split_indices(len(y), y, seed=1)
    assert not np.array_equal(s.train, other.train)
    for c, m in enumerate([100, 40, 20, 7, 3]):
        assert (y[s.val] == c).sum() == round(m * 0.15)
        assert (y[s.test] == c).sum() == round(m * 0.15)
        assert (y[s.train] == c).sum() == m - 2 * round(m * 0.15) >= 1
    assert s.part("val") is s.val
    with pytest.raises(NormScopeError, match="split part 'dev' is unknown"):
        s.part("dev")


def test_split_without_labels_and_tiny_classes():
    s = split_indices(100, None, seed=3)
    assert (len(s.train), len(s.val), len(s.test)) == (70, 15, 15)
    tiny = split_indices(4, np.array([0, 1, 1, 2]))
    assert set(tiny.train.tolist()) == {0, 1, 2, 3}  # classes too small to split stay in train


def test_label_notes(tmp_path, X):
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", np.r_[np.zeros(39, int), 1])
    ds = load_array_file(tmp_path / "x.npy", tmp_path / "y.npy")
    assert any("fewer than 2 examples" in n for n in ds.notes)
    assert any("strongly imbalanced" in n for n in ds.notes)


# --- bad input --------------------------------------------------------------------------------

def _save_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_missing_file(tmp_path):
    with pytest.raises(NormScopeError, match="does not exist; check the path"):
        load_array_file(tmp_path / "nope.npy")
    with pytest.raises(NormScopeError, match="does not exist"):
        load_dataset(str(tmp_path / "nope.npz"))


def test_missing_or_wrong_labels_file(tmp_path, X):
    np.save(tmp_path / "x.npy", X)
    with pytest.raises(NormScopeError, match="labels file .* does not exist"):
        load_array_file(tmp_path / "x.npy", tmp_path / "y.npy")
    (tmp_path / "y.csv").write_text("0\n1\n")
    with pytest.raises(NormScopeError, match="labels file .* is not a .npy file"):
        load_array_file(tmp_path / "x.npy", tmp_path / "y.csv")


@pytest.mark.parametrize("name, content, match", [
    ("data.csv", b"1,2,3\n", "not an array file; give a .npy or .npz file"),
    ("data.npy", b"hello world, not numpy", "not a .npy array file"),
    ("data.npz", b"hello world, not a zip", "not a .npz archive"),
    ("data.npy", b"", "not a .npy array file"),
])
def test_not_an_array_file(tmp_path, name, content, match):
    with pytest.raises(NormScopeError, match=match):
        load_array_file(_save_bytes(tmp_path / name, content))


def test_a_folder_is_not_an_array_file(tmp_path):
    (tmp_path / "dir.npy").mkdir()
    with pytest.raises(NormScopeError, match="is a folder"):
        load_array_file(tmp_path / "dir.npy")


@pytest.mark.parametrize("cut", ["data", "header"])
def test_truncated_npy(tmp_path, X, cut):
    np.save(tmp_path / "x.npy", X)
    full = (tmp_path / "x.npy").read_bytes()
    size = len(full) // 2 if cut == "data" else 20
    with pytest.raises(NormScopeError, match="damaged or truncated.*save it again"):
        load_array_file(_save_bytes(tmp_path / "t.npy", full[:size]))


@pytest.mark.parametrize("compressed", [False, True])
def test_truncated_npz(tmp_path, X, compressed):
    (np.savez_compressed if compressed else np.savez)(tmp_path / "x.npz", X=X)
    full = (tmp_path / "x.npz").read_bytes()
    with pytest.raises(NormScopeError, match="x_cut.npz .*damaged or truncated"):
        load_array_file(_save_bytes(tmp_path / "x_cut.npz", full[: len(full) * 2 // 3]))


@pytest.mark.parametrize("pos", [100, 400, 2000])
def test_corrupt_compressed_npz(tmp_path, rng, pos):
    np.savez_compressed(tmp_path / "x.npz", X=rng.random((40, 6, 7)).astype(np.float32))
    data = bytearray((tmp_path / "x.npz").read_bytes())
    data[pos : pos + 8] = b"\xff" * 8  # damage inside the deflated member (zlib or CRC error)
    with pytest.raises(NormScopeError, match="damaged or truncated"):
        load_array_file(_save_bytes(tmp_path / "bad.npz", bytes(data)))


def test_object_npy_is_refused_never_unpickled(tmp_path, evil):
    np.save(tmp_path / "o.npy", np.array([Evil(), 1.0], dtype=object), allow_pickle=True)
    assert not evil.exists()
    with pytest.raises(NormScopeError, match="holds Python objects; NormScope refuses"):
        load_array_file(tmp_path / "o.npy")
    np.save(tmp_path / "x.npy", np.zeros((2, 3, 4), np.float32))
    with pytest.raises(NormScopeError, match="holds Python objects"):  # as a labels file too
        load_array_file(tmp_path / "x.npy", tmp_path / "o.npy")
    assert not evil.exists()


@pytest.mark.parametrize("member", ["X", "y"])
@pytest.mark.parametrize("compressed", [False, True])
def test_object_npz_is_refused_never_unpickled(tmp_path, evil, member, compressed):
    arrays = {"X": np.zeros((2, 3, 4), np.float32), "y": np.array([0, 1])}
    arrays[member] = np.array([Evil(), Evil()], dtype=object)
    (np.savez_compressed if compressed else np.savez)(tmp_path / "o.npz", **arrays)
    with pytest.raises(NormScopeError, match="holds Python objects"):
        load_array_file(tmp_path / "o.npz")
    assert not evil.exists()


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".pkl"])
@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_raw_pickle_is_refused_never_unpickled(tmp_path, evil, suffix, protocol):
    path = _save_bytes(tmp_path / f"evil{suffix}", pickle.dumps(Evil(), protocol=protocol))
    with pytest.raises(NormScopeError, match="pickle|not a .npy|not a .npz|not an array file"):
        load_array_file(path)
    with pytest.raises(NormScopeError):
        load_dataset(str(path))
    assert not evil.exists()


@pytest.mark.parametrize("shape", [(40,), (40, 6), (2, 40, 6, 7), (40, 6, 7, 3), (1, 40, 6, 7, 1)])
def test_wrong_number_of_dimensions(tmp_path, shape):
    np.save(tmp_path / "x.npy", np.zeros(shape, np.float32))
    with pytest.raises(NormScopeError, match=r"\(N, H, W\), \(N, H, W, 1\) or \(N, 1, H, W\)"):
        load_array_file(tmp_path / "x.npy")


@pytest.mark.parametrize("arr, match", [
    (np.zeros((0, 6, 7), np.float32), "empty array"),
    (np.zeros((3, 6, 7), np.complex64), "needs real numbers"),
    (np.array([["a", "b"], ["c", "d"]]).reshape(1, 2, 2), "needs real numbers"),
])
def test_empty_or_non_real(tmp_path, arr, match):
    np.save(tmp_path / "x.npy", arr)
    with pytest.raises(NormScopeError, match=match):
        load_array_file(tmp_path / "x.npy")


def test_length_mismatch(tmp_path, X):
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", np.zeros(39, np.int64))
    with pytest.raises(NormScopeError, match="39 labels for 40 examples"):
        load_array_file(tmp_path / "x.npy", tmp_path / "y.npy")
    np.savez(tmp_path / "d.npz", X=X, y=np.zeros(41, np.int64))
    with pytest.raises(NormScopeError, match="41 labels for 40 examples"):
        load_array_file(tmp_path / "d.npz")


@pytest.mark.parametrize("labels, match", [
    (np.zeros((40, 2)), r"shape \(40, 2\)"),
    (np.r_[np.zeros(39), 0.5], "non-integer floats"),
    (np.r_[np.zeros(39), np.nan], "non-integer floats"),
])
def test_bad_labels(labels, match):
    with pytest.raises(NormScopeError, match=match):
        encode_labels(labels, 40, "y.npy")


def test_npz_without_x(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.zeros((2, 3, 4)))
    with pytest.raises(NormScopeError, match=r"has no array named X \(it has: images\)"):
        load_array_file(tmp_path / "d.npz")


def test_nonfinite_values_are_counted_and_reported(tmp_path, X):
    X = X.copy()
    X[0, 0, 0] = np.nan
    X[1, 2, 3] = np.inf
    X[5, 2, 3] = -np.inf
    np.save(tmp_path / "x.npy", X)
    ds = load_array_file(tmp_path / "x.npy")
    st = dataset_stats(ds, on="all")
    assert st.n_nonfinite == 3 and st.nonfinite[2, 3] == 2 and st.count[2, 3] == 38
    assert st.mean[2, 3] == pytest.approx(np.delete(X[:, 2, 3], [1, 5]).astype(float).mean())
    (f,) = [f for f in find(st) if f.code == "nonfinite_values"]
    assert f.severity == "error" and "3 values are NaN or infinite" in f.message
    assert "bands 0, 2" in f.message


def test_all_constant_data(tmp_path):
    np.save(tmp_path / "x.npy", np.full((30, 4, 5), 2.5, np.float32))
    st = dataset_stats(load_array_file(tmp_path / "x.npy"), on="all")
    assert st.n_constant == 20 and np.isnan(st.snr).all() and np.isnan(st.row_snr).all()
    (f,) = [f for f in find(st) if f.code == "constant_pixels"]
    assert f.severity == "error" and "20 pixels (100%) never change" in f.message


def test_all_nonfinite_file_is_refused(tmp_path):
    np.save(tmp_path / "x.npy", np.full((5, 4, 5), np.nan, np.float32))
    with pytest.raises(NormScopeError, match="every value is NaN or infinite"):
        dataset_stats(load_array_file(tmp_path / "x.npy"), on="all")


def test_unknown_split_name(X):
    ds = Dataset(X=X, y=None, class_names=(), name="x", id="x")
    with pytest.raises(NormScopeError, match="--on 'dev' is unknown"):
        dataset_stats(ds, on="dev")
