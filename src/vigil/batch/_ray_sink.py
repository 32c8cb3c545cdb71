"""A Ray Data datasink that writes each block with vigil's own writers (imports Ray, so it
is imported only by :mod:`vigil.batch.ray_engine` once Ray is known to be installed)."""

from __future__ import annotations

from typing import Any

from ray.data.datasource import BlockBasedFileDatasink

from vigil.batch.writers import open_writer


class PartFileSink(BlockBasedFileDatasink):
    """One part file per block, in ``fmt`` (Ray names it ``<job id>_<task>.<fmt>``)."""

    def __init__(self, path: str, fmt: Any, name: str) -> None:
        super().__init__(path, file_format=fmt)
        self.fmt = fmt
        self.name = name

    def write_block_to_file(self, block: Any, file: Any) -> None:
        table = block.to_arrow()
        writer = open_writer(self.fmt, file, table.schema, name=self.name)
        writer.write(table, 0)
        writer.close()
