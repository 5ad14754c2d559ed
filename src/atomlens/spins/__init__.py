"""Spin models, (replica-exchange) Wang-Landau sampling and coercivity from free energies."""
