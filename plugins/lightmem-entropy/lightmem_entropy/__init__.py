"""LightMem plugin: pre-compression by the self-information of a small causal language model."""
