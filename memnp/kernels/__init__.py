"""Crossbar kernels: NumPy reference, Numba CPU and Numba CUDA, behind one interface."""
from .backend import BACKENDS, backend_name, get_backend

__all__ = ["BACKENDS", "backend_name", "get_backend"]
