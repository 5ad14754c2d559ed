"""Physical constants and unit conversions used across atomlens (CODATA 2018)."""

HARTREE_TO_EV = 27.211386245988  # eV per Hartree
KB_EV = 8.617333262e-5  # Boltzmann constant, eV/K
KB_SI = 1.380649e-23  # Boltzmann constant, J/K
E_CHARGE = 1.602176634e-19  # elementary charge, C
AMU_G = 1.66053906660e-24  # atomic mass unit, g
MU_B_OVER_KB = 0.67171381563  # Bohr magneton over Boltzmann constant, K/T (mu_B * 1 T in kelvin)
