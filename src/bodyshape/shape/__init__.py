"""Shape space: template mesh, landmarks, body sources, registration and the PCA shape model.

Nothing in this package imports ``synth``, ``nets`` or ``train``.
"""
