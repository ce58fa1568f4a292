"""Input: every way embeddings reach the tool, safely.

Bounded, pickle-free loading of .safetensors, .npy, .npz, .pt, CSV/TSV and Parquet
files (:mod:`.loading`), the shipped sample sets (:mod:`.samples`), and embedding a
probe batch with a user's checkpoint (:mod:`.checkpoints`).  Errors are one-line
``EmbeddingLoadError`` / ``CheckpointError`` messages.
"""
