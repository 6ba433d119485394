"""echosearch: semantic search over echocardiogram videos with EchoCLIP-style models."""

__version__ = "0.1.0"
