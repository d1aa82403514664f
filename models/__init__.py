"""Offline training: cleaning, the components, blending, evaluation, the artifact."""

import os

# TensorFlow's oneDNN kernels allocate from a pool of their own that keeps what is freed: after
# a 1M-item Mult-VAE (8 GB of tables and Adam slots) the training process stayed that large
# through the stages after it. With the system allocator the memory goes back (a freed 480 MB
# variable: RSS 1,170 -> 614 MB; the same speed). Set before TensorFlow is imported.
os.environ.setdefault("TF_ONEDNN_USE_SYSTEM_ALLOCATOR", "1")
