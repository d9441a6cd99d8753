"""TerraScope: pixel-grounded geospatial reasoning."""
