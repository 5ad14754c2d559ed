"""Diffusion from molecular dynamics: MSD, tracer diffusivity, Arrhenius fits, RDFs."""
