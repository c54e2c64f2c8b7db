"""AltText API: privacy-first alt text for images."""

__version__ = "0.1.0"
