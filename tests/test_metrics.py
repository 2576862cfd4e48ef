"""physics.metrics: the agreement measures every benchmark and magnitude test uses."""

import numpy as np
import pytest

from napari_phase.physics.metrics import magnitude_slope, pearson_accuracy


def test_magnitude_slope_sees_the_size_that_correlation_cannot():
    rng = np.random.default_rng(0)
    truth = rng.standard_normal((2, 20, 24))
    assert magnitude_slope(truth, truth, crop=2) == pytest.approx(1.0)
    assert magnitude_slope(2 * truth + 5, truth, crop=2) == pytest.approx(2.0)  # offset ignored, size seen
    assert magnitude_slope(-0.5 * truth, truth) == pytest.approx(-0.5)
    assert pearson_accuracy(2 * truth, truth) == pytest.approx(1.0)  # correlation is blind to it
    assert magnitude_slope(truth, np.zeros_like(truth)) == 0.0
    with pytest.raises(ValueError):
        magnitude_slope(truth, truth[0])
