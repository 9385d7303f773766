"""Synthetic training data: posed bodies, cameras and rendered silhouettes.

This package may import ``bodyshape.shape``; ``shape`` never imports it.
"""
