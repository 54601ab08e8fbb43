import pytest

from tests.conftest import make_tiny_dataset


@pytest.fixture()
def data(tmp_path):
    """A tiny prepared dataset (32 px; 8 training normals; 4 unlabelled and 4 test images a class)."""
    return make_tiny_dataset(tmp_path / "tiny", size=32, n_train=8, n_unl=4, n_test=4)
