"""AppTest: the Compare tab's default configs follow the class information of the bands."""

from __future__ import annotations

import numpy as np

from band_helpers import speechlike as _speechlike


def test_compare_tab_defaults_follow_the_class_information(rng, tmp_path, monkeypatch):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("NORMSCOPE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NORMSCOPE_DATA_ROOT", str(tmp_path))
    from diagnostics.data import store

    ds = _speechlike(rng)
    ident = store.register_arrays(ds.X, ds.y, ds.class_names, "speechlike", {"source": "test"})
    app = str(Path(__file__).resolve().parents[2] / "app.py")
    at = AppTest.from_file(app, default_timeout=120)
    at.query_params.update({"tab": "Compare"})
    at.run()
    assert at.multiselect(key="configs").value == ["none", "per_pixel", "per_pixel@mask",
                                                   "db+per_row"]  # demo: noise rows, power
    # Low-SNR rows that carry the class: no @mask among the defaults, dB compression instead.
    at = AppTest.from_file(app, default_timeout=120)
    at.query_params.update({"tab": "Compare", "dataset": ident, "mask_snr": "0.5"})
    at.run()
    assert not at.exception, at.exception
    assert at.multiselect(key="configs").value == ["none", "per_pixel", "db+per_row"]

