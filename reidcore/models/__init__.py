"""Backbones (timm wrapper, ResNet-IBN-a), pooling (avg, max, GeM) and heads (BNNeck,
embedding, classifier). Importing this package imports no torch; use the submodules."""
