"""LightMem plugin: LLMLingua-2 pre-compression and attention-based topic segmentation."""
