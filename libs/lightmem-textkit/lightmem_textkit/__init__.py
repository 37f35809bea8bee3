"""Helpers shared by LightMem's local-model plugins (no heavy import; not a plugin itself)."""
