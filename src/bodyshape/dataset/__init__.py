"""The synthetic dataset as files: the contract between synthesis and learning.

``synth`` writes shards in this format; ``train`` and ``evaluate`` read them. Neither side
imports the other, so the prediction side (which evaluates checkpoints on held-out shards)
never imports the data generator.

- :mod:`.shard_format`: folder layout, shard arrays, manifests, ``read_shard`` / ``ShardData``;
- :mod:`.stream`: ``ShardDataset`` (shuffled streaming for torch), the mask augmentation and
  the held-out split.
"""
