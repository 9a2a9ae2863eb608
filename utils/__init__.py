"""Flask-free building blocks, a sub-package per concern; errors.py, config.py and entry_point.py are shared by all.

Layers, bottom to top (a package imports only from those below it): imaging, inference, data, evaluation, training.
"""
