"""LightMem's ``qdrant`` embedding retriever (Qdrant Edge embedded, or qdrant-client)."""

from .plugin import QdrantOptions

__all__ = ["QdrantOptions"]
