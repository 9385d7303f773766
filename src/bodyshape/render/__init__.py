"""Rendering of synthetic phone photos: pinhole cameras, exact binary silhouettes, and the
calibration of full-frame masks into network inputs lives next door in ``bodyshape.calibrate``.

Conventions shared by every module here: world coordinates in meters (Z up, the subject
facing -Y, their left at +X); OpenCV camera axes (x right, y down, z forward); continuous
pixel coordinates in which pixel (row i, column j) covers ``[j, j+1] x [i, i+1]`` and has its
centre at ``(j + 0.5, i + 0.5)``.
"""
