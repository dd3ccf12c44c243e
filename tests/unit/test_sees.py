"""What the network sees: the examples and profile agree with Normalizer; the figure's grid and
colour ranges; clips play only from the server's data root."""

from __future__ import annotations

import numpy as np
import pytest

from diagnostics import sees
from diagnostics.data.dataset import Dataset, split_indices
from diagnostics.errors import NormScopeError
from diagnostics.normalize import Normalizer
from diagnostics.plots.sees import (band_profile_figure, panel_ranges, sees_colourbar_figure,
                                    sees_column_figure, sees_figure)


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


@pytest.mark.parametrize("origin", ["lower", "upper"])
def test_live_column_stacks_the_examples_top_to_bottom(ds, origin):
    views = _views(ds, ["per_pixel@mask", "none"], [0, 1, 2])
    ranges = panel_ranges(views, "own")
    fig = sees_column_figure(views[0], ["x", "y", "z"], ranges[0], row_origin=origin,
                             col_label="frame", row_label="band")
    assert fig.layout.meta["config"] == "per_pixel@mask" and fig.layout.meta["examples"] == ["x", "y", "z"]
    assert fig.layout.title.text == "<b>per_pixel@mask</b>"
    H = ds.shape[0]
    for t, z, (lo, hi) in zip(fig.data, views[0].examples, ranges[0]):
        np.testing.assert_allclose(np.asarray(t.z, float), z, rtol=1e-6)
        assert (t.zmin, t.zmax) == (lo, hi) and t.y0 % 1 == 0 and t.dy == 1
    # On screen the first example is the top one, whichever way the bands run.
    y0 = [t.y0 for t in fig.data]
    rng = list(fig.layout.yaxis.range)
    top_first = y0 == sorted(y0, reverse=rng[0] < rng[1])
    assert top_first and len(set(y0)) == 3 and min(abs(a - b) for a in y0 for b in y0 if a != b) > H
    # Each example's label, then its range; each panel's dropped rows washed out and named.
    labels = [a.text for a in fig.layout.annotations if a.text in ("x", "y", "z")]
    assert labels == ["x", "y", "z"]
    assert [a.text for a in fig.layout.annotations if " … " in a.text] == [
        f"{lo:.3g} … {hi:.3g}" for lo, hi in ranges[0]]
    washed = [sh for sh in fig.layout.shapes if sh.fillcolor != "white"]
    assert len(washed) == 3 and [a.text for a in fig.layout.annotations].count("dropped") == 3
    assert {(sh.y1 - sh.y0) for sh in washed} == {3.0}  # the three noise rows of each panel
    # Band ticks repeat per panel; only the first column carries the axis title.
    assert list(fig.layout.yaxis.ticktext).count("0") == 3 and fig.layout.yaxis.title.text == "band"
    other = sees_column_figure(views[1], ["x", "y", "z"], ranges[1], first=False, own=False)
    assert other.layout.yaxis.title.text == "" and other.layout.margin.l < fig.layout.margin.l
    assert not [a for a in other.layout.annotations if " … " in a.text]  # shared: no ranges
    assert not other.layout.shapes or all(sh.fillcolor == "white" for sh in other.layout.shapes)


def test_live_grid_ranges_match_the_export_and_the_colourbar_reads_them(ds):
    views = _views(ds, ["none", "per_pixel"], [0, 1])
    for colour in ("own", "shared"):
        export = sees_figure(views, ["x", "y"], colour=colour)
        ranges = panel_ranges(views, colour)
        # The export's traces run example by example, configs side by side.
        assert [(t.zmin, t.zmax) for t in export.data] == [ranges[c][r] for r in range(2) for c in range(2)]
    every = np.concatenate([v.examples.ravel() for v in views])
    shared = panel_ranges(views, "shared")[0][0]
    assert shared == pytest.approx((np.nanmin(every), np.nanmax(every)))
    bar = sees_colourbar_figure(2, shared)
    assert (bar.data[0].zmin, bar.data[0].zmax) == shared
    assert bar.data[0].colorbar.title.text == "value after normalization"
    own = sees_colourbar_figure(2, None)
    assert list(own.data[0].colorbar.ticktext) == ["min", "max"]
    assert own.layout.height == sees_column_figure(views[0], ["x", "y"], panel_ranges(views)[0]).layout.height
    with pytest.raises(ValueError, match="colour"):
        panel_ranges(views, "loud")
