"""The pipeline's stages: ingestion, indexing, retrieval (with fusion).

Each stage is handed its collaborators through a
:class:`~lightmem_core.pipeline.runtime.Runtime`; none imports the facade.
"""
