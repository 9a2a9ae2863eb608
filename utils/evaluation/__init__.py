"""Measuring models: metrics, attacks and robustness sweeps, data audits, and the Markdown and plot reports."""
