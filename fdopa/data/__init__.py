"""Cohort data: layout, validation, the synthetic FDOPA cohort, transforms and datamodules."""
