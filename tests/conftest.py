import pytest

from lrdm.config import TrainConfig
from lrdm.data import make_synthetic_dataset


@pytest.fixture(scope="session")
def rain_index(tmp_path_factory):
    """A small synthetic rain set (64 px patches) shared by the slower tests."""
    root = tmp_path_factory.mktemp("rain")
    make_synthetic_dataset(root, "rain", size=64, patches_per_image=4, test_patches_per_image=2, seed=0)
    return root / "index.parquet"


@pytest.fixture
def tiny_config(rain_index):
    """A network and run small enough for a few CPU steps per second."""
    return TrainConfig(
        index=str(rain_index),
        crop=16,
        dim=8,
        dim_mults=(1, 2),
        steps=6,
        batch_size=2,
        lr=1e-3,
        checkpoint_every=2,
        log_every=1,
        ema_start=0,
        ema_update_every=1,
        ema_decay=0.9,
        T=100,
        rank_spec="poly_decrease-p3",
    )
