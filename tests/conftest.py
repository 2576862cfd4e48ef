import os

import numpy as np
import pytest

# Keep torch from oversubscribing the small CI machine.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _napari_phase_registered():
    """napari's test viewer does not discover installed plugins by itself: register ours."""
    from npe2 import PluginManager, PluginManifest

    pm = PluginManager.instance()
    if "napari-phase" not in pm:
        pm.register(PluginManifest.from_distribution("napari-phase"))
    yield
