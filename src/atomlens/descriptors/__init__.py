"""Descriptor models: features, random forest / XGBoost on tables, SISSO."""
