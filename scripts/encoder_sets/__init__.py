"""The encoder families of ``scripts/real_encoders.py``, one module per kind of model."""
