"""normlab: reproduce the failure of BatchNorm in NLP Transformers (TID, RBN) and the LayerNorm family."""

__version__ = "0.1.0"
