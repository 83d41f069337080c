"""Datasets: parsers for on-disk layouts, video decoding, face alignment, the HDF5 cache."""
