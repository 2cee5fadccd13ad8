"""Label Studio ML backend: image or text embeddings in Chroma, a linear head on ratings,
and a labeling queue steered by the head's weight vector."""

__version__ = "0.1.0"
