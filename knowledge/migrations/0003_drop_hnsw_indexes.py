"""The pgvector backend no longer searches by HNSW (`knowledge.vectors`: measured, the graph
missed the right item on near-duplicate items and cost ~8 ms an insert): drop the
per-knowledge-base HNSW indexes that earlier versions created on `knowledge_item_vector`.
Nothing happens on SQLite or without the table."""

from django.db import migrations

TABLE = "knowledge_item_vector"


def drop_hnsw_indexes(apps, schema_editor) -> None:
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexdef LIKE %s",
            [TABLE, "%USING hnsw%"],
        )
        for (name,) in cursor.fetchall():
            cursor.execute(f'DROP INDEX IF EXISTS "{name}"')


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0002_pgvector_item_vectors")]

    operations = [migrations.RunPython(drop_hnsw_indexes, migrations.RunPython.noop)]
