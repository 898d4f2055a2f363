"""Sources shipped into the Triton repository as Python-backend `model.py` files (run by Triton)."""
