"""Training side of Vantage (PyTorch): meshes, rendering, models, training, evaluation."""
