"""The statistics engine: oracles, invariants, degenerate cases, both engines."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler

from diagnostics.errors import NormScopeError
from diagnostics.stats.accumulate import PixelStats, StatsAccumulator, is_constant
from diagnostics.stats.moments import compute_stats, energy_share, format_share, row_mask


ENGINES = ("numpy", "numba")
FIELDS = ("count", "mean", "std", "min", "max", "nonfinite", "zero_frac", "constant", "snr",
          "row_snr", "amplification")


def reference(X: np.ndarray) -> dict:
    """Float64 numpy over the finite values of each pixel (two-pass)."""
    x = np.asarray(X, np.float64)
    fin = np.isfinite(x)
    xm = np.where(fin, x, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels: NaN is the answer
        mean = np.nanmean(xm, 0)
        std = np.sqrt(np.nanmean((xm - mean) ** 2, 0))
        return dict(count=fin.sum(0), mean=mean, std=std, min=np.nanmin(xm, 0),
                    max=np.nanmax(xm, 0), nonfinite=(~fin).sum(0),
                    zero_frac=(xm == 0).sum(0) / fin.sum(0))


def assert_same_stats(a: PixelStats, b: PixelStats, *, rtol: float = 1e-12) -> None:
    assert a.n == b.n and a.shape == b.shape
    for f in FIELDS:
        np.testing.assert_allclose(getattr(a, f), getattr(b, f), rtol=rtol, atol=0,
                                   equal_nan=True, err_msg=f)
    assert a.global_mean == pytest.approx(b.global_mean, rel=rtol)
    assert a.global_std == pytest.approx(b.global_std, rel=rtol)
    if a.class_means is None:
        assert b.class_means is None
    else:
        np.testing.assert_allclose(a.class_means, b.class_means, rtol=rtol, equal_nan=True)
        np.testing.assert_array_equal(a.class_counts, b.class_counts)


# --- oracle agreement -------------------------------------------------------------------------

@pytest.mark.parametrize("engine", ENGINES)
def test_matches_float64_numpy(spectro, engine):
    st = compute_stats(spectro, engine=engine)
    ref = reference(spectro)
    for k, v in ref.items():
        np.testing.assert_allclose(getattr(st, k), v, rtol=1e-12, err_msg=k)
    np.testing.assert_allclose(st.snr, np.abs(ref["mean"]) / ref["std"], rtol=1e-12)
    x = spectro.astype(np.float64)
    assert st.global_mean == pytest.approx(x.mean(), rel=1e-12)
    assert st.global_std == pytest.approx(x.std(), rel=1e-12)
    np.testing.assert_allclose(st.amplification, x.std() / ref["std"], rtol=1e-12)
    np.testing.assert_allclose(st.row_snr, np.median(st.snr, axis=1), rtol=1e-12)
    assert st.n == spectro.shape[0] and st.shape == spectro.shape[1:]
    assert not st.constant.any() and st.n_nonfinite == 0


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("with_nan", [False, True])
def test_matches_standard_scaler(spectro, rng, engine, with_nan):
    X = spectro.copy()
    X[:, 2, 3] = 7.0  # a constant pixel: the scaler gives it scale 1, we flag it
    if with_nan:  # StandardScaler ignores NaN, as we do
        X[rng.random(X.shape) < 0.05] = np.nan
    flat = X.reshape(len(X), -1)
    sc = StandardScaler().fit(flat)
    st = compute_stats(X, engine=engine)
    np.testing.assert_allclose(st.mean.ravel(), sc.mean_, rtol=1e-10)
    keep = ~st.constant.ravel()
    np.testing.assert_allclose(st.std.ravel()[keep], sc.scale_[keep], rtol=1e-10)
    assert st.constant[2, 3] and st.n_constant == 1
    assert sc.scale_[2 * X.shape[2] + 3] == 1.0
    np.testing.assert_array_equal(st.count.ravel(), sc.n_samples_seen_)


# --- invariants: chunking, merging, engines ---------------------------------------------------

@pytest.mark.parametrize("chunk_rows", [1, 3, 7, 64, 239, 1000])
def test_chunked_equals_one_shot(spectro, labels, chunk_rows):
    whole = compute_stats(spectro, engine="numpy", chunk_rows=len(spectro), labels=labels,
                          n_classes=4)
    chunked = compute_stats(spectro, engine="numpy", chunk_rows=chunk_rows, labels=labels,
                            n_classes=4)
    assert_same_stats(chunked, whole, rtol=1e-12)


def test_accumulator_uneven_chunks_and_merge_equal_whole(spectro, labels):
    whole = StatsAccumulator(spectro.shape[1:], n_classes=4).partial_fit(spectro, labels)
    a = StatsAccumulator(spectro.shape[1:], n_classes=4)
    for lo, hi in ((0, 1), (1, 50), (50, 51), (51, 130)):
        a.partial_fit(spectro[lo:hi], labels[lo:hi])
    b = StatsAccumulator(spectro.shape[1:], n_classes=4).partial_fit(spectro[130:], labels[130:])
    merged = a.merge(b).finalize()
    assert_same_stats(merged, whole.finalize(), rtol=1e-12)
    # The merge of two halves equals the one-shot numpy reference too.
    np.testing.assert_allclose(merged.std, reference(spectro)["std"], rtol=1e-12)


def test_partial_fit_refuses_other_shapes(spectro):
    with pytest.raises(NormScopeError, match=r"does not fit statistics of 12 x 17"):
        StatsAccumulator((12, 17)).partial_fit(spectro[:, :, :5])
    with pytest.raises(NormScopeError, match="selection is empty"):
        StatsAccumulator((12, 17)).finalize()


def test_merge_refuses_other_shapes():
    with pytest.raises(NormScopeError, match="different shapes"):
        StatsAccumulator((2, 3)).merge(StatsAccumulator((3, 2)))
    with pytest.raises(NormScopeError, match="class counts"):
        StatsAccumulator((2, 3), n_classes=2).merge(StatsAccumulator((2, 3), n_classes=3))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 9, 243])  # block of 4 rows, its tail, empty threads
def test_numba_equals_numpy(spectro, labels, n):
    X, y = spectro[:n], labels[:n]
    assert_same_stats(compute_stats(X, engine="numba", labels=y, n_classes=4),
                      compute_stats(X, engine="numpy", labels=y, n_classes=4), rtol=1e-11)


@pytest.mark.parametrize("with_nan", [False, True])
def test_worker_threads_share_blocks(spectro, labels, rng, monkeypatch, with_nan):
    """Many small blocks on several threads (the path big files take) give the same numbers
    in both engines as one block on one thread."""
    import diagnostics.stats.kernels as K
    import diagnostics.stats.stream as S

    X = spectro.copy()
    if with_nan:
        X[rng.random(X.shape) < 0.001] = np.nan  # some blocks finite, some not
    idx = np.flatnonzero(rng.random(len(X)) < 0.8)
    monkeypatch.setenv(S.THREADS_ENV, "1")
    one = compute_stats(X, indices=idx, labels=labels, n_classes=4, engine="numpy",
                        chunk_rows=len(X))
    monkeypatch.setattr(K, "BLOCK_BYTES", 8 * spectro[0].nbytes)  # 8-row blocks: 30 of them
    monkeypatch.setenv(S.THREADS_ENV, "3")
    assert S.n_threads() == 3
    a = compute_stats(X, indices=idx, labels=labels, n_classes=4, engine="numba")
    b = compute_stats(X, indices=idx, labels=labels, n_classes=4, engine="numpy", chunk_rows=5)
    assert_same_stats(a, one, rtol=1e-11)
    assert_same_stats(b, one, rtol=1e-11)


def test_thread_count_follows_free_cores(monkeypatch):
    import diagnostics.stats.stream as S

    monkeypatch.delenv(S.THREADS_ENV, raising=False)
    usable_cores = S.usable_cores
    monkeypatch.setattr(S.os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert 1 <= usable_cores() <= 3
    monkeypatch.setattr(S, "usable_cores", lambda: 2)
    monkeypatch.setattr(S, "busy_cores", lambda: 0)
    assert S.n_threads() == 2
    monkeypatch.setattr(S, "busy_cores", lambda: 1)  # one other busy process: one thread
    assert S.n_threads() == 1
    monkeypatch.setattr(S, "busy_cores", lambda: 7)  # every core shared: one thread each
    assert S.n_threads() == 2
    monkeypatch.setattr(S, "usable_cores", lambda: 8)
    monkeypatch.setattr(S, "busy_cores", lambda: 6)
    assert S.n_threads() == 2
    monkeypatch.setattr(S, "usable_cores", lambda: 64)
    monkeypatch.setattr(S, "busy_cores", lambda: 0)
    assert S.n_threads() == S.MAX_THREADS
    monkeypatch.setenv(S.THREADS_ENV, "3")  # fixed by the user
    assert S.n_threads() == 3
    monkeypatch.setenv(S.THREADS_ENV, "two")
    with pytest.raises(NormScopeError, match="NORMSCOPE_THREADS='two' must be a whole number"):
        S.n_threads()



def test_numba_equals_numpy_on_float64_subset_with_nonfinite(spectro, labels, rng):
    X = spectro.astype(np.float64)
    X[rng.random(X.shape) < 0.01] = np.nan
    X[3, 1, 1], X[4, 1, 2] = np.inf, -np.inf
    X[:, 0, 5] = np.nan
    idx = np.sort(rng.choice(len(X), 150, replace=False))
    a = compute_stats(X, indices=idx, labels=labels, n_classes=4, engine="numba")
    b = compute_stats(X, indices=idx, labels=labels, n_classes=4, engine="numpy")
    assert_same_stats(a, b, rtol=1e-11)
    assert a.n_nonfinite == int((~np.isfinite(X[idx])).sum())


def test_numba_on_readonly_memmap(spectro, tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, spectro)
    X = np.load(path, mmap_mode="r")
    assert_same_stats(compute_stats(X, engine="numba"), compute_stats(spectro, engine="numpy"),
                      rtol=1e-11)


@pytest.mark.parametrize("with_nan", [False, True])
def test_numpy_engine_reads_a_memmapped_file_as_memory(spectro, labels, rng, tmp_path, with_nan):
    """Rows read from the file (preadv, runs of consecutive rows) give the array's numbers."""
    import diagnostics.stats.stream as S

    X = spectro.copy()
    if with_nan:
        X[rng.random(X.shape) < 0.001] = np.nan
    np.save(tmp_path / "x.npy", X)
    M = np.load(tmp_path / "x.npy", mmap_mode="r")
    assert S._backing_file(M) is not None  # the file path is really taken
    assert S._backing_file(np.load(tmp_path / "x.npy", mmap_mode="c")) is None  # private copy
    idx = np.flatnonzero(rng.random(len(X)) < 0.7)  # runs of consecutive rows and gaps
    for ind in (idx, None):
        for rows in (1, 5, 1000):
            assert_same_stats(
                compute_stats(M, indices=ind, labels=labels, n_classes=4, engine="numpy",
                              chunk_rows=rows),
                compute_stats(X, indices=ind, labels=labels, n_classes=4, engine="numpy",
                              chunk_rows=len(X)), rtol=1e-12)


def test_a_file_replaced_after_opening_is_never_read(spectro, tmp_path):
    """The mapping's values count, not those of a newer file under the same name."""
    path = tmp_path / "x.npy"
    np.save(path, spectro)
    M = np.load(path, mmap_mode="r")
    np.save(tmp_path / "new.npy", spectro + 100)
    (tmp_path / "new.npy").replace(path)
    np.testing.assert_allclose(compute_stats(M, engine="numpy").mean,
                               spectro.astype(np.float64).mean(0), rtol=1e-12)


@pytest.mark.parametrize("fold_rows, bound", [(50, 1e-11), (10**9, 1e-9)])
def test_shift_follows_the_running_mean(rng, monkeypatch, fold_rows, bound):
    """The first rows set the first shift; when they are far from the mean, the shift moves
    to the running mean at each fold, so the squares stay small.  (Without folds the same data
    loses two more digits: the second case, which says the first one measures something.)"""
    import diagnostics.stats.stream as S

    monkeypatch.setattr(S, "FOLD_BYTES", 8 * 6 * fold_rows)
    N = 200_000
    X = 1e5 + 0.01 * rng.standard_normal((N, 2, 3))
    X[:8] += 1e3  # outliers first: a poor first estimate of the mean
    x = X.reshape(N, -1)
    mean = np.ascontiguousarray(x.T).sum(1) / N
    std = np.sqrt((np.ascontiguousarray((x - mean).T) ** 2).sum(1) / N)
    st = compute_stats(X, engine="numpy", chunk_rows=64)
    assert np.max(np.abs(st.mean.ravel() - mean) / mean) < 1e-14
    err = np.max(np.abs(st.std.ravel() - std) / std)
    assert err < bound
    if fold_rows > N:
        assert err > 1e-11


def test_integer_input_uses_numpy_engine(rng):
    X = rng.integers(-300, 300, (50, 4, 5)).astype(np.int16)
    st = compute_stats(X)  # auto: integers never go to numba
    np.testing.assert_allclose(st.mean, X.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(st.std, X.astype(np.float64).std(0), rtol=1e-12)
    with pytest.raises(NormScopeError, match="float32 or float64"):
        compute_stats(X, engine="numba")


# --- numerical stability ----------------------------------------------------------------------

@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("offset", [1e4, 1e6])
def test_large_offset_stays_exact(rng, engine, offset):
    N = 100_000  # enough that float32 sums break (see the assertion on np.mean below)
    X = (offset + 0.1 * rng.standard_normal((N, 2, 3))).astype(np.float32)
    x = X.astype(np.float64).reshape(N, -1)
    # Float64 two-pass reference with pairwise sums (contiguous along the summed axis).
    mean = np.ascontiguousarray(x.T).sum(1) / N
    std = np.sqrt((np.ascontiguousarray((x - mean).T) ** 2).sum(1) / N)
    # The data really does break float32 accumulation (the seed's approach).
    assert np.max(np.abs(np.mean(X, 0).ravel() - mean) / std) > 10
    st = compute_stats(X, engine=engine)
    assert np.max(np.abs(st.mean.ravel() - mean) / mean) < 1e-10
    assert np.max(np.abs(st.std.ravel() - std) / std) < 1e-10
    assert not st.constant.any()


# --- degenerate pixels ------------------------------------------------------------------------

@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("engine", ENGINES)
def test_constant_pixels_are_flagged_never_divided(spectro, engine):
    X = spectro.copy()
    X[:, 0, 0] = 5.0
    X[:, 1, 1] = 0.0
    X[:, 2, 2] = 1e6  # constant at a large offset
    X[:, 4, :] = 3.0  # a whole constant row
    X[:, 5, 5] = (1.0 + 1e-6 * np.arange(len(X)) / len(X)).astype(np.float32)  # tiny but real
    st = compute_stats(X, engine=engine)
    const = np.zeros(X.shape[1:], bool)
    const[0, 0] = const[1, 1] = const[2, 2] = True
    const[4, :] = True
    np.testing.assert_array_equal(st.constant, const)
    assert np.all(st.std[const] == 0)
    assert np.all(np.isnan(st.snr[const])) and np.all(np.isnan(st.amplification[const]))
    assert np.all(np.isfinite(st.snr[~const])) and np.all(np.isfinite(st.amplification[~const]))
    assert np.isnan(st.row_snr[4]) and np.isfinite(np.delete(st.row_snr, 4)).all()
    assert st.zero_frac[1, 1] == 1.0
    for f in FIELDS:
        assert not np.isinf(np.asarray(getattr(st, f), float)).any(), f


def test_is_constant_is_relative_to_float_eps():
    n = np.array([100, 100, 100, 0])
    mean = np.array([1e6, 1e6, 1.0, 0.0])
    var = np.array([1e-25, 1e-6, 1e-20, 0.0])
    np.testing.assert_array_equal(is_constant(var, mean, n), [True, False, False, True])


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("engine", ENGINES)
def test_nonfinite_values_are_counted_and_left_out(spectro, rng, engine):
    X = spectro.copy()
    X[rng.random(X.shape) < 0.03] = np.nan
    X[7, 3, 3], X[8, 3, 3], X[9, 6, 1] = np.inf, -np.inf, np.inf
    X[:, 10, 10] = np.nan  # no finite value at all
    X[:-1, 11, 0] = np.nan  # exactly one finite value
    st = compute_stats(X, engine=engine)
    bad = ~np.isfinite(X)
    np.testing.assert_array_equal(st.nonfinite, bad.sum(0))
    np.testing.assert_array_equal(st.count, (~bad).sum(0))
    assert st.n_nonfinite == bad.sum()
    ref = reference(X)
    ok = np.ones(X.shape[1:], bool)
    ok[10, 10] = False
    for k in ("mean", "std", "min", "max"):
        np.testing.assert_allclose(getattr(st, k)[ok], ref[k][ok], rtol=1e-12, err_msg=k)
    assert np.isnan(st.mean[10, 10]) and np.isnan(st.std[10, 10]) and np.isnan(st.snr[10, 10])
    assert st.constant[10, 10] and st.count[10, 10] == 0
    assert st.constant[11, 0] and st.count[11, 0] == 1  # one value has no spread
    assert np.isfinite(st.global_mean) and np.isfinite(st.global_std)
    assert np.isfinite(st.sample).all()


@pytest.mark.parametrize("engine", ENGINES)
def test_all_values_nonfinite_is_refused(engine):
    X = np.full((9, 3, 4), np.nan, np.float32)
    X[0, 0, 0] = np.inf
    with pytest.raises(NormScopeError, match="every value is NaN or infinite"):
        compute_stats(X, engine=engine)


# --- selections and classes -------------------------------------------------------------------

@pytest.mark.parametrize("engine", ENGINES)
def test_indices_subset(spectro, rng, engine):
    idx = np.sort(rng.choice(len(spectro), 97, replace=False))
    expect = compute_stats(spectro[idx], engine="numpy")
    assert_same_stats(compute_stats(spectro, indices=idx, engine=engine), expect, rtol=1e-11)
    # A set: order and repeats do not matter; a boolean mask says the same.
    shuffled = np.r_[rng.permutation(idx), idx[:5]]
    assert_same_stats(compute_stats(spectro, indices=shuffled, engine=engine), expect,
                      rtol=1e-11)
    mask = np.zeros(len(spectro), bool)
    mask[idx] = True
    assert_same_stats(compute_stats(spectro, indices=mask, engine=engine), expect, rtol=1e-11)


def test_contiguous_indices_in_chunks(spectro):
    idx = np.arange(40, 200)
    assert_same_stats(compute_stats(spectro, indices=idx, chunk_rows=7, engine="numpy"),
                      compute_stats(spectro[40:200], engine="numpy"), rtol=1e-12)


@pytest.mark.parametrize("bad, match", [
    (np.array([], np.int64), "selection is empty"),
    (np.array([0, 240]), r"must lie in 0\.\.239"),
    (np.array([-1, 3]), r"must lie in 0\.\.239"),
    (np.array([0.5, 1.0]), "must be integers"),
    (np.ones(10, bool), "must have 240 entries"),
    (np.zeros(240, bool), "selection is empty"),
])
def test_bad_indices(spectro, bad, match):
    with pytest.raises(NormScopeError, match=match):
        compute_stats(spectro, indices=bad)


@pytest.mark.parametrize("engine", ENGINES)
def test_class_means_match_numpy(spectro, labels, engine):
    st = compute_stats(spectro, labels=labels, n_classes=4, engine=engine)
    x = spectro.astype(np.float64)
    for c in range(4):
        np.testing.assert_allclose(st.class_means[c], x[labels == c].mean(0), rtol=1e-11)
    np.testing.assert_array_equal(st.class_counts, np.bincount(labels, minlength=4))
    # On a subset without class 3, its map is undefined (NaN), not zero.
    idx = np.flatnonzero(labels != 3)
    sub = compute_stats(spectro, indices=idx, labels=labels, n_classes=4, engine=engine)
    assert sub.class_counts.tolist() == [60, 60, 60, 0]
    assert np.isnan(sub.class_means[3]).all()
    np.testing.assert_allclose(sub.class_means[1], x[labels == 1].mean(0), rtol=1e-11)


def test_no_class_maps_without_labels(spectro):
    st = compute_stats(spectro, n_classes=4)
    assert st.class_means is None and st.class_counts is None


@pytest.mark.parametrize("y, match", [
    (np.arange(240) % 5, r"labels must lie in 0\.\.3"),
    (-(np.arange(240) % 2), r"labels must lie in 0\.\.3"),
    (np.zeros(100, np.int64), "one per example"),
    (np.zeros(240), "one per example"),
])
def test_bad_labels(spectro, y, match):
    with pytest.raises(NormScopeError, match=match):
        compute_stats(spectro, labels=y, n_classes=4)


@pytest.mark.parametrize("X, engine, match", [
    (np.zeros((3, 4)), "auto", r"\(N, H, W\) array"),
    (np.zeros((3, 4, 5)), "gpu", "engine='gpu' is unknown"),
])
def test_bad_arguments(X, engine, match):
    with pytest.raises(NormScopeError, match=match):
        compute_stats(X, engine=engine)


# --- masks and energy -------------------------------------------------------------------------

def test_row_mask_thresholds_and_ranges():
    snr = np.array([0.1, 0.5, np.nan, 2.0, 0.2])
    np.testing.assert_array_equal(row_mask(snr), [False] * 5)  # 0 masks nothing
    np.testing.assert_array_equal(row_mask(snr, threshold=0.3), [True, False, True, False, True])
    # The threshold is strict: a row exactly at it is kept.
    np.testing.assert_array_equal(row_mask(snr, threshold=0.2), [True, False, True, False, False])
    np.testing.assert_array_equal(row_mask(snr, threshold=5.0), [True] * 5)
    np.testing.assert_array_equal(row_mask(snr, rows=(3, 4)), [False, False, False, True, True])
    np.testing.assert_array_equal(row_mask(snr, threshold=0.3, rows=(1, 1)),
                                  [True, True, True, False, True])


@pytest.mark.parametrize("kwargs, match", [
    (dict(threshold=-0.1), "finite number >= 0"),
    (dict(threshold=float("nan")), "finite number >= 0"),
    (dict(threshold=float("inf")), "finite number >= 0"),
    (dict(rows=(3, 1)), "outside 0-4 or reversed"),
    (dict(rows=(0, 5)), "outside 0-4 or reversed"),
    (dict(rows=(-1, 2)), "outside 0-4 or reversed"),
])
def test_row_mask_bad_values(kwargs, match):
    with pytest.raises(NormScopeError, match=match):
        row_mask(np.ones(5), **kwargs)


def test_energy_share(spectro):
    st = compute_stats(spectro)
    e = np.abs(spectro.astype(np.float64).mean(0)).sum(1)
    mask = np.zeros(12, bool)
    mask[[0, 10, 11]] = True
    assert energy_share(st, mask) == pytest.approx(e[mask].sum() / e.sum(), rel=1e-12)
    assert energy_share(st, np.zeros(12, bool)) == 0.0
    assert energy_share(st, np.ones(12, bool)) == pytest.approx(1.0)
    # The faint floor rows hold a tiny share of the energy: what the page reports.
    assert energy_share(st, np.arange(12) >= 9) < 0.001
    zeros = compute_stats(np.zeros((4, 2, 3), np.float32))
    assert energy_share(zeros, np.array([True, False])) == 0.0


@pytest.mark.parametrize("share, text", [
    (0.0, "0%"), (3e-6, "<0.01%"), (0.00034, "0.03%"), (0.0096, "0.96%"), (0.026, "2.6%"),
    (0.5, "50.0%"), (0.9996, ">99.9%"), (1.0, "100.0%"), (float("nan"), "n/a"),
])
def test_format_share_never_rounds_a_real_share_to_zero(share, text):
    assert format_share(share) == text


def test_skewness_and_sample(rng):
    sym = compute_stats(rng.standard_normal((400, 5, 6)).astype(np.float32))
    assert abs(sym.skewness) < 0.2
    heavy = compute_stats(rng.lognormal(0, 1.5, (400, 5, 6)).astype(np.float32))
    assert heavy.skewness > 5
    assert heavy.sample.dtype == np.float32 and heavy.sample.size == 400 * 30


# --- the JIT: cached across processes, never for small data ----------------------------------
