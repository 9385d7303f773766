"""The body model: template, rig, coarse mesh and PCA shape model behind one ``BodyModel``,
the pose vocabulary, and the kinematics written once in torch.

- :mod:`.model`: ``BodyModel``, loaded once per entry point and passed down;
- :mod:`.kinematics`: pose angles -> rotations -> skinning -> yaw -> height scaling (torch);
- :mod:`.pose`: ``POSE_NAMES``, ``PoseSpec``, ``PoseParams``;
- :mod:`.rig`: the 16-joint skeleton's data (``JOINT_NAMES``, ``Rig``).
"""

from bodyshape.body.model import BodyModel
from bodyshape.body.pose import POSE_NAMES, PoseParams, PoseSpec
from bodyshape.body.rig import JOINT_NAMES, Rig

__all__ = ["BodyModel", "JOINT_NAMES", "POSE_NAMES", "PoseParams", "PoseSpec", "Rig"]
