"""bodyshape: 3D body shape and tape measurements from a front and a side photo.

Data flows one way: shape (template, registration, PCA) -> synth -> train -> predict.
"""

__version__ = "0.1.0"
