"""What the network sees: the examples and profile agree with Normalizer; the figure's grid and
colour ranges; clips play only from the server's data root."""

from __future__ import annotations

import numpy as np
import pytest

from diagnostics import sees
from diagnostics.data.dataset import Dataset, split_indices
from diagnostics.errors import NormScopeError
from diagnostics.normalize import Normalizer
from diagnostics.plots.sees import band_profile_figure, sees_figure


@pytest.fixture
def ds(rng, labels):
    """Rows 0-8 a steady level plus noise (high SNR), rows 9-11 noise only (SNR about 1)."""
    level = np.r_[np.geomspace(40.0, 2.0, 9), np.zeros(3)][:, None]
    X = (level + rng.exponential(0.3, (240, 12, 17))).astype(np.float32)
    return Dataset(X=X, y=labels, class_names=("a", "b", "c", "d"), name="tiny", id="tiny")


def _views(ds, configs, indices, mask_snr=2.0):
    return [sees.network_view(ds, sees.fit_config(ds, c, mask_snr=mask_snr), indices) for c in configs]


def test_one_example_per_class_from_the_test_split(ds):
    picked = sees.pick_examples(ds)
    test = set(split_indices(ds.n, ds.y).test.tolist())
    assert [ds.y[i] for i, _ in picked] == [0, 1, 2, 3]
    assert all(i in test for i, _ in picked)
    assert picked[0][1] == f"a · #{picked[0][0]}"
    assert sees.pick_examples(ds, index=5) == [(5, f"#5 · {ds.class_names[ds.y[5]]}")]
    with pytest.raises(NormScopeError, match="example 240 does not exist"):
        sees.pick_examples(ds, index=240)


@pytest.mark.parametrize("config", ["none", "per_pixel", "db+per_row", "log1p+robust@mask"])
def test_views_are_the_normalizer_output_fitted_on_train(ds, config):
    idx = [7, 3, 200]
    view = _views(ds, [config], idx)[0]
    norm = Normalizer(config, mask_snr=2.0).fit(ds.X, indices=split_indices(ds.n, ds.y).train)
    want = norm.transform(ds.X[idx])
    assert view.examples.shape == (3,) + ds.shape
    np.testing.assert_array_equal(view.examples[:, norm.keep_rows_], want)
    assert np.isnan(view.examples[:, ~norm.keep_rows_]).all()


def test_band_profile_is_mean_and_std_over_test_examples_and_frames(ds):
    fit = sees.fit_config(ds, "per_pixel@mask", mask_snr=2.0)
    test = split_indices(ds.n, ds.y).test
    out = fit.normalizer.transform(ds.X[test]).astype(np.float64)
    kept = fit.kept
    assert kept.tolist() == [True] * 9 + [False] * 3  # the three noise rows
    np.testing.assert_allclose(fit.band_mean[kept], out.mean(axis=(0, 2)))
    np.testing.assert_allclose(fit.band_std[kept], out.std(axis=(0, 2)))
    assert np.isnan(fit.band_mean[~kept]).all() and fit.n_profile == test.size


def test_figure_grid_rows_are_examples_and_columns_configs(ds):
    configs = ["none", "per_pixel", "db+per_row"]
    views = _views(ds, configs, [0, 1])
    fig = sees_figure(views, ["x", "y"], colour="own", caption_text="cap")
    assert len(fig.data) == 2 * 3
    assert fig.layout.meta["configs"] == configs and fig.layout.meta["examples"] == ["x", "y"]
    for t, (r, c) in zip(fig.data, [(r, c) for r in range(2) for c in range(3)]):
        np.testing.assert_allclose(np.asarray(t.z, float), views[c].examples[r], rtol=1e-6)
    # One subplot per example (rows top to bottom); configs left to right on its x axis.
    yd = [fig.layout[f"yaxis{'' if k == 1 else k}"].domain for k in (1, 2)]
    assert yd[0][0] > yd[1][1] and all(0 <= v <= 1 for d in yd for v in d)
    assert [t.yaxis for t in fig.data] == ["y"] * 3 + ["y2"] * 3
    x0 = [t.x0 for t in fig.data[:3]]
    assert x0[0] == 0 and x0[1] >= 17 and x0[2] - x0[1] == x0[1]  # W = 17 frames, then a gap
    assert fig.layout.xaxis2.title.text == "frame" and "x<br>frequency band" == fig.layout.yaxis.title.text
    assert list(fig.layout.xaxis2.ticktext[:2]) == ["0", "5"]  # frame numbers, not offsets
    heads = [a.text for a in fig.layout.annotations if a.text.startswith("<b>")]
    assert heads == [f"<b>{c}</b>" for c in configs]
    assert fig.layout.title.subtitle.text.startswith("cap")


def test_own_scale_spans_each_panel_and_shared_spans_all(ds):
    views = _views(ds, ["none", "per_pixel"], [0, 1])
    own = sees_figure(views, ["x", "y"], colour="own")
    for t, z in zip(own.data, [views[c].examples[r] for r in range(2) for c in range(2)]):
        assert (t.zmin, t.zmax) == pytest.approx((np.nanmin(z), np.nanmax(z)))
        assert f"{t.zmin:.4g} … {t.zmax:.4g}" in t.hovertemplate
    # One colourbar reading min .. max; each panel's range printed above it.
    assert [t.showscale for t in own.data] == [True, False, False, False]
    assert list(own.data[0].colorbar.ticktext) == ["min", "max"]
    ranges = [a.text for a in own.layout.annotations if " … " in a.text]
    assert ranges == [f"{t.zmin:.3g} … {t.zmax:.3g}" for t in own.data]
    shared = sees_figure(views, ["x", "y"], colour="shared")
    every = np.concatenate([v.examples.ravel() for v in views])
    assert {(t.zmin, t.zmax) for t in shared.data} == {(np.nanmin(every), np.nanmax(every))}
    assert [t.showscale for t in shared.data] == [True, False, False, False]
    with pytest.raises(ValueError, match="colour"):
        sees_figure(views, ["x", "y"], colour="loud")


def test_dropped_rows_are_washed_out_in_every_panel(ds):
    views = _views(ds, ["per_pixel@mask", "none"], [0])
    fig = sees_figure(views, ["x"])
    washed = [s for s in fig.layout.shapes if s.fillcolor != "white"]  # not the gaps
    assert len(washed) == 1 and washed[0].xref == "x" and washed[0].x1 == 16.5  # first panel
    assert [a.text for a in fig.layout.annotations if a.text == "dropped"] == ["dropped"]


def test_profile_figure_lines_and_log_std(ds):
    views = _views(ds, ["none", "per_pixel"], [0])
    fig = band_profile_figure(views, caption_text="cap")
    assert [t.name for t in fig.data] == ["none", "none", "per_pixel", "per_pixel"]
    np.testing.assert_allclose(np.asarray(fig.data[3].x, float), views[1].band_std)
    assert fig.layout.xaxis2.type == "log" and fig.layout.meta["log_std"]


def test_clip_paths_come_from_the_registry_and_stay_under_the_root(tmp_path, home, rng):
    from audio_helpers import make_folder
    from diagnostics.data.audio import playback
    from diagnostics.data.audio.loader import load_audio

    folder = make_folder(tmp_path / "data" / "tones", rng, per_class=2)
    ds = load_audio(folder, workers=1)
    path, why = playback.clip_path(ds.id, 0, root=tmp_path / "data")
    assert path == (folder / "cat" / "00.wav").resolve() and why == ""
    clip, _ = playback.read_clip(ds.id, 0, root=tmp_path / "data")
    assert clip.data == path.read_bytes() and clip.mime == "audio/wav"
    assert playback.clip_path(ds.id, 0, root=tmp_path / "other")[1].endswith("outside the data root")
    assert playback.clip_path(ds.id, 99, root=tmp_path)[0] is None
    assert "not registered" in playback.clip_path("demo", 0, root=tmp_path)[1] or \
        playback.clip_path("demo", 0, root=tmp_path)[0] is None
