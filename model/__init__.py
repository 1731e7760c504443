"""The fusion classifier: features, networks, data loading, training, metrics, checkpoints."""
