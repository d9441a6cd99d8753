"""TerraScope nn.Modules and the pure region-injection functions."""
