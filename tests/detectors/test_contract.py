"""Every registered method keeps the detector contract (vigil.testing.check_detector)."""

import pytest

from vigil.detectors import METHODS, make_detector
from vigil.testing import CHECKS


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("method", sorted(METHODS))
def test_registered_method_keeps_the_contract(method, check):
    check(make_detector(method))


def test_windowed_isolation_forest_keeps_the_contract():
    from vigil.testing import check_detector

    check_detector(make_detector("isolation_forest", window=5, n_estimators=20))
