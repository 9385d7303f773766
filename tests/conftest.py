"""Fixtures shared by several test modules."""

import pytest

from bodyshape.shape.rig import load_rig
from bodyshape.shape.template import load_template


@pytest.fixture(scope="module")
def rig():
    return load_rig()


@pytest.fixture(scope="module")
def tpl():
    return load_template()
