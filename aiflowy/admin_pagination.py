"""Admin pagination for the huge history tables (conversations, messages, workflow runs)."""

from django.core.paginator import Paginator
from django.db import connection
from django.utils.functional import cached_property


class EstimatedCountPaginator(Paginator):
    """History tables grow huge; counting every row for the page links is not worth a scan."""

    @cached_property
    def count(self) -> int:
        query = self.object_list.query
        if not query.where and not query.distinct and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE relname = %s",
                    [self.object_list.model._meta.db_table],
                )
                row = cursor.fetchone()
                if row and row[0] > 100_000:
                    return int(row[0])
        return super().count
