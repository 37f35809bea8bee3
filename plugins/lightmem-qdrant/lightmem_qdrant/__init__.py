"""LightMem's ``qdrant`` embedding retriever (Qdrant Edge embedded, or qdrant-client)."""

from .options import QdrantOptions

__all__ = ["QdrantOptions"]
