"""Audio features: agreement with librosa, exact shapes, the process pool, the cache."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf
from audio_helpers import SR, librosa_reference, make_folder, signal, write_clip

from diagnostics.data import ingest

from diagnostics.data.audio import loader

from diagnostics.data import store
from diagnostics.data.audio.features import FeatureParams, clip_features, extract_features
from diagnostics.data.audio.loader import load_audio
from diagnostics.errors import NormScopeError
from diagnostics.stats.summary import dataset_stats, summary


# Every test gets its own empty NORMSCOPE_HOME (the `home` fixture of conftest.py).
pytestmark = pytest.mark.usefixtures("home")


@pytest.fixture
def folder(tmp_path, rng):
    return make_folder(tmp_path / "clips", rng)


# --- parameters --------------------------------------------------------------------------------

def test_default_shape_is_60_by_130():
    p = FeatureParams()
    assert (p.feature, p.sr, p.n_mels, p.n_fft, p.hop, p.duration) == ("mel", 22050, 60, 2048,
                                                                       512, 3.0)
    assert p.n_frames == 1 + int(3.0 * 22050) // 512 == 130
    assert p.shape == (60, 130)
    assert FeatureParams(feature="mfcc", n_mfcc=13).shape == (13, 130)


@pytest.mark.parametrize("kw, match", [
    ({"feature": "db"}, "feature='db' is unknown"),
    ({"sr": 0}, "sr=0 must be between"),
    ({"sr": 22050.5}, "whole number"),
    ({"n_mels": 0}, "n_mels=0"),
    ({"hop": -1}, "hop=-1"),
    ({"n_fft": "2048"}, "whole number"),
    ({"duration": 0}, "duration=0"),
    ({"duration": float("nan")}, "duration=nan"),
    ({"duration": "abc"}, "number of seconds"),
    ({"feature": "mfcc", "n_mfcc": 80}, "must not exceed n_mels=60"),
    ({"top_db": -1.0}, "top_db"),
])
def test_bad_parameters_are_refused(kw, match):
    with pytest.raises(NormScopeError, match=match):
        FeatureParams(**kw)


def test_cache_key_holds_only_parameters_that_change_the_numbers():
    assert FeatureParams(n_mfcc=13).key() == FeatureParams(n_mfcc=40).key()
    assert FeatureParams(feature="mfcc", n_mfcc=13).key() != FeatureParams(feature="mfcc").key()
    assert FeatureParams(top_db=None).key() == FeatureParams().key()
    logmel = FeatureParams(feature="logmel")
    assert FeatureParams(feature="logmel", top_db=None).key() != logmel.key()
    assert FeatureParams.from_dict(FeatureParams(feature="logmel").key()) == FeatureParams(
        feature="logmel")


# --- one clip: the user's own librosa pipeline ----------------------------------------------

@pytest.mark.parametrize("feature", ["mel", "logmel", "mfcc"])
@pytest.mark.parametrize("clip", [
    dict(sr=SR, channels=1, seconds=1.0, ext="wav"),    # shorter than 3 s: padded
    dict(sr=44100, channels=2, seconds=4.0, ext="wav"),  # resampled, mixed, trimmed
    dict(sr=16000, channels=1, seconds=2.0, ext="flac"),
    dict(sr=SR, channels=1, seconds=1.5, ext="ogg"),
])
def test_features_agree_with_librosa_called_directly(tmp_path, rng, feature, clip):
    path = write_clip(tmp_path / f"c.{clip['ext']}", 523.0, rng=rng, sr=clip["sr"],
                      channels=clip["channels"], seconds=clip["seconds"])
    params = FeatureParams(feature=feature)
    got = clip_features(path, params)
    want = librosa_reference(path, feature=feature)
    assert got.dtype == np.float32 and got.shape == params.shape == want.shape
    np.testing.assert_array_equal(got, want)  # the same calls: bit for bit


@pytest.mark.parametrize("sr, hop, duration", [(16000, 300, 1.7), (8000, 128, 0.5),
                                                (22050, 512, 2.99)])
def test_frame_count_is_exact(tmp_path, rng, sr, hop, duration):
    path = write_clip(tmp_path / "c.wav", 300.0, rng=rng, sr=44100, seconds=1.0)
    p = FeatureParams(sr=sr, hop=hop, duration=duration, n_mels=40, n_fft=512)
    F = clip_features(path, p)
    assert F.shape == (40, 1 + int(duration * sr) // hop)
    np.testing.assert_allclose(F, librosa_reference(path, sr=sr, hop=hop, duration=duration,
                                                    n_mels=40, n_fft=512), rtol=1e-5, atol=1e-9)


def test_resampled_stereo_matches_mono_at_target_rate(tmp_path):
    a = write_clip(tmp_path / "a.wav", 1000.0, sr=SR, channels=1, noise=0)
    b = write_clip(tmp_path / "b.wav", 1000.0, sr=48000, channels=2, noise=0)
    Fa, Fb = clip_features(a), clip_features(b)
    assert Fa.shape == Fb.shape
    assert np.argmax(Fa[:, 10]) == np.argmax(Fb[:, 10])  # same band carries the tone
    # Same clip up to resampling: nearly identical spectrograms while the tone lasts.
    assert np.corrcoef(Fa[:, 2:40].ravel(), Fb[:, 2:40].ravel())[0, 1] > 0.99


@pytest.mark.parametrize("feature", ["mel", "logmel", "mfcc"])
def test_silent_clip_gives_finite_features(tmp_path, feature):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(SR, np.float32), SR)
    F = clip_features(path, FeatureParams(feature=feature))
    assert np.all(np.isfinite(F))
    if feature == "mel":
        assert np.all(F == 0)
    if feature == "logmel":
        np.testing.assert_allclose(F, 10 * np.log10(1e-10))  # the amin floor, not -inf


def test_silent_clips_give_finite_statistics(tmp_path, rng):
    root = make_folder(tmp_path / "d", rng, per_class=3)
    (root / "silence").mkdir()
    for i in range(3):
        sf.write(root / "silence" / f"{i}.wav", np.zeros(SR // 2, np.float32), SR)
    for feature in ("mel", "logmel"):
        ds = load_audio(root, params=FeatureParams(feature=feature), workers=1)
        assert ds.n == 9 and np.all(np.isfinite(ds.X))
        st = dataset_stats(ds, on="all")
        info = summary(ds, st, on="all")
        json.dumps(info, allow_nan=False)  # every number is finite or null
        assert st.n_nonfinite == 0 and np.isfinite(st.global_std)
        assert np.all(np.isfinite(st.snr[~st.constant]))


# --- many clips: the pool --------------------------------------------------------------------

@pytest.mark.slow
def test_pool_equals_inline_and_reports_progress(folder):
    paths = sorted(folder.rglob("*.wav"))
    calls = []
    one = extract_features(paths, workers=1)
    two = extract_features(paths, workers=2, progress=lambda d, t: calls.append((d, t)))
    assert two.workers == 2 and one.workers == 1
    np.testing.assert_array_equal(one.X, two.X)
    assert one.X.shape == (12, 60, 130) and one.ok.all() and not one.skipped
    assert calls[0] == (0, 12) and calls[-1] == (12, 12)
    assert all(a[0] <= b[0] for a, b in zip(calls, calls[1:]))


@pytest.mark.slow
def test_bad_clips_are_skipped_in_place_and_listed(folder):
    (folder / "dog" / "03.wav").write_text("not audio at all")
    paths = sorted(folder.rglob("*.wav"))
    ext = extract_features(paths, workers=2)
    bad = paths.index(folder / "dog" / "03.wav")
    assert ext.X.shape[0] == 11 and not ext.ok[bad] and ext.ok.sum() == 11
    assert ext.skipped == ((str(paths[bad]), "not readable as audio: Format not recognised."),)
    good = [p for p in paths if p != paths[bad]]
    for row, p in zip(ext.X, good):  # the rows moved up stay aligned with their clips
        np.testing.assert_allclose(row, librosa_reference(p), rtol=1e-5, atol=1e-9)


# --- sources ---------------------------------------------------------------------------------

def test_folder_dataset_rows_labels_and_meta(folder, rng):
    write_clip(folder / "cat" / "deeper" / "x.flac", 1500.0, rng=rng)
    (folder / "cat" / "notes.txt").write_text("ignore me")
    (folder / ".hidden").mkdir()
    write_clip(folder / ".hidden" / "h.wav", 100.0)
    write_clip(folder / "cat" / ".h.wav", 100.0)
    ds = load_audio(folder, workers=1)
    files = store.dataset_files(ds.id)
    assert files[:2] == ["cat/00.wav", "cat/01.wav"] and "cat/deeper/x.flac" in files
    assert ds.n == 13 and ds.class_names == ("cat", "dog")
    assert list(ds.y) == [0] * 7 + [1] * 6
    assert isinstance(ds.X, np.memmap) and not ds.X.flags.writeable
    np.testing.assert_allclose(ds.X[0], librosa_reference(folder / "cat" / "00.wav"),
                               rtol=1e-5, atol=1e-9)
    meta = store.dataset_meta(ds.id)
    assert meta["feature_params"] == FeatureParams().key()
    assert meta["source"] == f"folder {folder}"
    assert any("1 file(s) that are not audio" in n for n in ds.notes)
    assert ds.row_label == "frequency band"


def test_unsorted_folder_gives_unlabelled_clips(tmp_path, rng):
    for i in range(3):
        write_clip(tmp_path / "flat" / f"{i}.wav", 440.0, rng=rng)
    ds = load_audio(tmp_path / "flat", workers=1)
    assert ds.y is None and ds.n == 3
    assert any("no labels" in n for n in ds.notes)


def test_manifest_keeps_order_and_sorts_integer_labels_numerically(tmp_path, rng):
    d = tmp_path / "m"
    for i, f in enumerate([300, 600, 900, 1200]):
        write_clip(d / "audio" / f"{i}.wav", f, rng=rng)
    (d / "meta").mkdir()
    (d / "meta" / "list.csv").write_text(
        "path,label\n../audio/3.wav,10\n../audio/0.wav,2\n\n# a comment\n"
        f"{(d / 'audio' / '1.wav').as_posix()},2\n../audio/2.wav,10\n../audio/gone.wav,2\n")
    ds = load_audio(d / "meta" / "list.csv", workers=1)
    assert ds.class_names == ("2", "10") and list(ds.y) == [1, 0, 0, 1]
    assert store.dataset_files(ds.id)[0] == "../audio/3.wav"
    np.testing.assert_allclose(ds.X[0], librosa_reference(d / "audio" / "3.wav"),
                               rtol=1e-5, atol=1e-9)
    assert store.dataset_meta(ds.id)["skipped"] == [["../audio/gone.wav", "does not exist"]]
    assert ds.name == "list"


def test_mfcc_dataset_has_coefficient_rows(folder):
    ds = load_audio(folder, params=FeatureParams(feature="mfcc", n_mfcc=13), workers=1)
    assert ds.shape == (13, 130) and ds.row_label == "MFCC coefficient"


def test_too_many_mel_bands_for_the_fft_are_noted(folder):
    ds = load_audio(folder, params=FeatureParams(n_mels=128, n_fft=256), workers=1)
    assert any("mel filters are empty" in n for n in ds.notes)


@pytest.mark.slow
def test_label_warnings_are_notes(tmp_path, rng):
    make_folder(tmp_path / "d", rng, classes=(("big", 440.0),), per_class=20)
    write_clip(tmp_path / "d" / "tiny" / "0.wav", 900.0, rng=rng)
    # In-process: the notes come from the labels, not from the pool (tested on its own above).
    ds = load_audio(tmp_path / "d", workers=1)
    assert any("fewer than 2 examples (tiny)" in n for n in ds.notes)
    assert any("strongly imbalanced" in n for n in ds.notes)


# --- cache ------------------------------------------------------------------------------------

def test_second_open_is_a_cache_hit(folder):
    calls = []
    first = load_audio(folder, progress=lambda d, t: calls.append(d))
    assert calls, "the first open extracts"
    calls.clear()
    again = load_audio(folder, progress=lambda d, t: calls.append(d))
    # No progress callback means no clip was decoded (bench/bench_audio.py times the open).
    assert again.id == first.id and not calls
    np.testing.assert_array_equal(again.X, first.X)


def test_unchanged_files_are_not_hashed_again(folder, monkeypatch):
    monkeypatch.setattr(loader, "RACY_NS", 0)  # the files were written a moment ago
    hashed = []
    real = loader._sha256_file
    monkeypatch.setattr(loader, "_sha256_file", lambda p: hashed.append(p) or real(p))
    first = load_audio(folder, workers=1)
    assert len(hashed) == 12
    hashed.clear()
    assert load_audio(folder, workers=1).id == first.id
    assert hashed == []


def test_changed_file_gives_a_new_id(folder, rng):
    first = load_audio(folder, workers=1)
    write_clip(folder / "dog" / "02.wav", 3000.0, rng=rng)
    second = load_audio(folder, workers=1)
    assert second.id != first.id
    assert store.open_dataset(first.id).n == 12  # the old dataset is still there


def _fresh_extraction(folder, home, params=None):
    """The same folder extracted with no cache at all (a reference for reuse)."""
    import shutil

    shutil.rmtree(home / "cache", ignore_errors=True)
    shutil.rmtree(home / "datasets", ignore_errors=True)
    return load_audio(folder, params=params, workers=1)


def test_one_changed_clip_is_the_only_one_extracted_again(folder, rng, home):
    first = load_audio(folder, workers=1)
    write_clip(folder / "dog" / "02.wav", 3000.0, rng=rng)
    write_clip(folder / "bird" / "00.wav", 5000.0, rng=rng)  # a new class with one clip
    calls = []
    second = load_audio(folder, workers=1, progress=lambda d, t: calls.append(t))
    assert set(calls) == {2}  # the changed clip and the new one; the other 11 are reused
    meta = store.dataset_meta(second.id)
    assert (meta["extra"]["extracted"], meta["extra"]["reused"]) == (2, 11)
    assert second.id != first.id and second.n == 13
    X2 = np.array(second.X)
    y2, names2 = second.y.copy(), second.class_names
    ref = _fresh_extraction(folder, home)  # nothing cached: every clip decoded
    assert ref.id == second.id
    np.testing.assert_array_equal(np.array(ref.X), X2)  # bit for bit, rows in the same order
    np.testing.assert_array_equal(ref.y, y2)
    assert ref.class_names == names2


def test_reuse_needs_the_same_parameters_and_a_registered_dataset(folder, rng, home):
    import shutil

    load_audio(folder, workers=1)
    calls = []
    load_audio(folder, params=FeatureParams(hop=256), workers=1,
               progress=lambda d, t: calls.append(t))
    assert set(calls) == {12}  # other parameters: nothing to reuse
    first = load_audio(folder, workers=1)
    shutil.rmtree(home / "datasets" / first.id)  # its rows are gone with it
    write_clip(folder / "dog" / "02.wav", 3000.0, rng=rng)
    calls.clear()
    load_audio(folder, workers=1, progress=lambda d, t: calls.append(t))
    assert set(calls) == {12}


def test_reused_rows_keep_the_truncated_note(folder, home):
    target = folder / "cat" / "03.wav"
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])  # cut short: decoded part kept
    first = load_audio(folder, workers=1)
    assert any("cut short" in n for n in store.dataset_meta(first.id)["notes"])
    (folder / "dog" / "00.wav").unlink()
    calls = []
    second = load_audio(folder, workers=1, progress=lambda d, t: calls.append((d, t)))
    assert calls == []  # every clip reused: no extraction and no progress to show
    meta = store.dataset_meta(second.id)
    assert meta["extra"]["extracted"] == 0 and meta["extra"]["reused"] == 11
    assert any(n.startswith("1 clip(s) are cut short") for n in meta["notes"])


def test_an_unusable_clip_index_only_costs_time(folder, home):
    first = load_audio(folder, workers=1)
    (home / "cache" / "clips.db").write_bytes(b"not a database" * 100)
    (folder / "dog" / "00.wav").unlink()
    second = load_audio(folder, workers=1)
    assert second.n == 11 and store.dataset_meta(second.id)["extra"]["extracted"] == 11
    import sqlite3  # ... and the damaged index was replaced by a working one

    with sqlite3.connect(home / "cache" / "clips.db") as con:
        assert con.execute("SELECT COUNT(*) FROM clips").fetchone() == (11,)
    keep = [k for k, f in enumerate(store.dataset_files(first.id)) if "dog/00" not in f]
    np.testing.assert_array_equal(np.array(second.X), np.array(first.X)[keep])


def test_replaced_file_with_same_size_and_mtime_is_noticed(folder, monkeypatch):
    monkeypatch.setattr(loader, "RACY_NS", 0)
    first = load_audio(folder, workers=1)
    target = folder / "dog" / "01.wav"
    st = target.stat()
    x, sr = sf.read(target, dtype="int16")
    sf.write(target, x[::-1].copy(), sr, subtype="PCM_16")  # same size, other content
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # as cp -p / rsync -t would
    assert target.stat().st_size == st.st_size and target.stat().st_mtime_ns == st.st_mtime_ns
    assert load_audio(folder, workers=1).id != first.id


def test_changed_parameter_gives_a_new_id(folder):
    ids = {load_audio(folder, params=p, workers=1).id for p in (
        FeatureParams(), FeatureParams(hop=256), FeatureParams(feature="logmel"),
        FeatureParams(duration=2.0))}
    assert len(ids) == 4
    # ... while a parameter that does not apply keeps the id.
    assert load_audio(folder, params=FeatureParams(n_mfcc=7), workers=1).id == \
        load_audio(folder, workers=1).id


def test_deleted_dataset_is_rebuilt(folder, home):
    import shutil

    first = load_audio(folder, workers=1)
    shutil.rmtree(home / "datasets" / first.id)
    assert load_audio(folder, workers=1).id == first.id


def test_formats_wav_flac_ogg_mp3(tmp_path, rng):
    for ext in ("wav", "flac", "ogg", "mp3"):
        write_clip(tmp_path / "f" / ext / f"a.{ext}", 440.0, rng=rng)
    ds = load_audio(tmp_path / "f", workers=1)
    assert ds.n == 4 and not store.dataset_meta(ds.id)["skipped"]
    assert signal(440.0).dtype == np.float32


def test_deleting_a_dataset_drops_its_cache_entries(folder, home):
    import sqlite3

    first = load_audio(folder, workers=1)
    cache_files = list((home / "cache" / "audio").glob("*.json"))
    assert any(json.loads(f.read_text())["id"] == first.id for f in cache_files)
    ingest.delete_dataset(first.id)
    assert not any(json.loads(f.read_text())["id"] == first.id
                   for f in (home / "cache" / "audio").glob("*.json"))
    with sqlite3.connect(home / "cache" / "clips.db") as con:
        assert con.execute("SELECT COUNT(*) FROM clips WHERE dataset = ?",
                           (first.id,)).fetchone() == (0,)
    calls = []
    again = load_audio(folder, workers=1, progress=lambda d, t: calls.append(t))
    assert set(calls) == {12} and again.id == first.id  # rebuilt, the same content id


class _Stop(Exception):
    """What Streamlit raises in the script thread when a click starts a new run."""


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_a_stop_raised_by_progress_ends_extraction_and_registers_nothing(tmp_path, rng, home,
                                                                        workers):
    folder = make_folder(tmp_path / "clips", rng, per_class=20)
    seen = []

    def progress(done, total):
        seen.append(done)
        if done > 0:
            raise _Stop

    with pytest.raises(_Stop):
        load_audio(folder, workers=workers, progress=progress)
    assert 0 < seen[-1] < 40  # stopped part-way, at the first update after the start
    assert store.list_datasets() == []
    assert not list((home / "cache" / "audio").glob("*.json"))
    # Nothing half-done is left behind: the next open extracts every clip and succeeds.
    seen.clear()
    ds = load_audio(folder, workers=workers, progress=lambda d, t: seen.append(t))
    assert ds.n == 40 and set(seen) == {40}


def test_a_damaged_stored_dataset_is_not_reused(folder, rng, home):
    first = load_audio(folder, workers=1)
    x_file = home / "datasets" / first.id / "X.npy"
    x_file.write_bytes(x_file.read_bytes()[: x_file.stat().st_size // 2])  # cut in half
    write_clip(folder / "dog" / "02.wav", 3000.0, rng=rng)
    calls = []
    second = load_audio(folder, workers=1, progress=lambda d, t: calls.append(t))
    assert set(calls) == {12}  # nothing read from the damaged file; every clip decoded
    assert store.dataset_meta(second.id)["extra"]["reused"] == 0
    ref = _fresh_extraction(folder, home)
    assert ref.id == second.id


def test_a_read_error_while_copying_stored_rows_falls_back_to_decoding(folder, rng, home,
                                                                      monkeypatch):
    from diagnostics.data.audio import clip_cache

    load_audio(folder, workers=1)
    real, failures = clip_cache.gather, []

    def failing_once(*args):
        if not failures:
            failures.append(1)
            raise OSError(5, "Input/output error")  # as a bad disk under the memmap would
        return real(*args)

    monkeypatch.setattr(clip_cache, "gather", failing_once)
    write_clip(folder / "dog" / "02.wav", 3000.0, rng=rng)
    second = load_audio(folder, workers=1)
    assert failures and store.dataset_meta(second.id)["extra"]["extracted"] == 12
    ref = _fresh_extraction(folder, home)
    assert ref.id == second.id
