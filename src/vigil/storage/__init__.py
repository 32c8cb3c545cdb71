"""Storage: the SQL metadata database and the content-addressed artifact store."""

from __future__ import annotations

from vigil.storage.artifacts import ArtifactStore, StoredTree
from vigil.storage.sql import Base, Database, utcnow

__all__ = ["ArtifactStore", "Base", "Database", "StoredTree", "utcnow"]
