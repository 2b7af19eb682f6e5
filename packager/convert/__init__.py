"""Conversions from a source model to an artifact format, one module each."""
