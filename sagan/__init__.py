"""SAGAN reproduction: spatial-aware attention GAN for semi-supervised medical anomaly detection."""

__version__ = "0.1.0"
