"""cars-deploy: hardware-aware neural architecture search with CARS (CVPR 2020), from search to phone."""
__version__ = "0.1.0"

__all__ = ["__version__"]
