"""LightMem memory manager ``llama-cpp``: a local GGUF model run in-process by llama-cpp-python."""
