"""The DiffusionFake model: SD loading (sd), encoder (backbone), branch heads (modules), the full model
(diffusionfake), the detector-only export (detector), checkpoint resolution (checkpoints) and DDIM
reconstruction (reconstruct). Import submodules directly; this package imports nothing heavy.
"""
