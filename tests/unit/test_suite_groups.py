"""The suite's own scheduling: xdist groups must take effect.

Tests that start a Streamlit server or a training pool are kept on one xdist worker each
(tests/conftest.py) so that two cores never run two servers or two pools at once.  pytest 9.2
moved the node-id attribute that pytest-xdist 3.8 rewrites for ``--dist loadgroup``, and the
groups then silently stop existing; requirements-dev.txt pins pytest below 9.2.
"""

from __future__ import annotations

import os

import pytest


@pytest.mark.xdist_group("suite_check")
def test_xdist_groups_take_effect(request):
    if not (os.environ.get("PYTEST_XDIST_WORKER") and request.config.getvalue("loadgroup")):
        pytest.skip("groups exist only under pytest-xdist with --dist loadgroup (the README's "
                    "command)")
    assert request.node.nodeid.endswith("@suite_check"), (
        f"pytest-xdist did not group {request.node.nodeid}: this pytest / pytest-xdist pair "
        "breaks xdist_group; install requirements-dev.txt")
