"""Readers, generators and the data module of TerraScope (Terra-CoT JSON, TerraScope-Bench parquet)."""
