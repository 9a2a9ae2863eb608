"""Bytes to pixels: format sniffing, safe decoding within memory and pixel limits, orientation, and provenance."""
