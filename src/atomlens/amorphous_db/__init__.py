"""The amorphous database: a plan of melt-quench + anneal jobs, run into an ASE database.

``plan`` (the YAML plan and its jobs), ``jobs`` (one job in a worker), ``store`` (the
database rows), ``build`` (claims, executors, resume), ``show`` (summary and plot) and
``features`` (the featurize table from the database).
"""
