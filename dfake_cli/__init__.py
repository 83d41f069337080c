"""dfake: the DiffusionFake method (NeurIPS 2024) as a command-line toolkit.

Data flows one way: raw dataset -> manifest -> HDF5 cache -> training -> checkpoint -> reports.
"""

__version__ = "0.1.0"
