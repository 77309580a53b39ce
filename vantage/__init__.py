"""Vantage: object category and 3D pose from one image crop.

This root package is the small framework-free core shared by training
(`vantage.train`), export (`vantage.export`) and serving (`vantage.serve`):
pose geometry in numpy, the category list, image pre-processing and the
model-bundle format. It must never import torch.
"""

__version__ = "0.1.0"
