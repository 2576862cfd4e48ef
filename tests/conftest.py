import os

import numpy as np
import pytest

# Keep torch from oversubscribing the small CI machine.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture
def rng():
    return np.random.default_rng(0)
