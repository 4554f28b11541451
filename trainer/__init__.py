"""Retraining Key.Net as the paper does: synthetic pairs, the M-SIP loss, a siamese loop (CPU, GPU or torchrun)."""
