"""LightMem graph memory on networkx, persisted in SQLite (graph_memory backend ``networkx``)."""
