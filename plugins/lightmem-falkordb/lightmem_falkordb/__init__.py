"""LightMem graph memory on a FalkorDB server (graph_memory backend ``falkordb``)."""
