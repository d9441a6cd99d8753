from rsim.radiomap.data.datamodule import RadioMapDataModule, input_channels
from rsim.radiomap.data.dataset import RadioMapDataset
from rsim.radiomap.data.features import sample_observations
from rsim.radiomap.data.layout import PL_MAX, PL_RANGE, PL_TRNC, RadioMapLayout, db_to_gray, gray_to_db, read_png

__all__ = [
    "PL_MAX",
    "PL_RANGE",
    "PL_TRNC",
    "RadioMapDataModule",
    "RadioMapDataset",
    "RadioMapLayout",
    "db_to_gray",
    "gray_to_db",
    "input_channels",
    "read_png",
    "sample_observations",
]
