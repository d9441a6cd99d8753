from rsim.slimming.data.eurosat import EUROSAT_BANDS, EuroSATFolder, split_indices
from rsim.slimming.data.testing import write_eurosat_fixture

__all__ = ["EUROSAT_BANDS", "EuroSATFolder", "split_indices", "write_eurosat_fixture"]
