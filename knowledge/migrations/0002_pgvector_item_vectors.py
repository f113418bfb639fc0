"""On PostgreSQL with the `vector` extension available: the pgvector table of item vectors
(`knowledge.vectors.PgVectors`). Elsewhere (SQLite, or a PostgreSQL without the extension)
nothing happens, and vectors are searched by the embedded backend.

Production: a PostgreSQL with the pgvector extension installed (`CREATE EXTENSION vector` needs
it on the server); migrate creates the extension when it is available."""

from django.db import migrations

TABLE = "knowledge_item_vector"


def create(apps, schema_editor) -> None:
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
        if cursor.fetchone() is None:
            return
        cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} ("
            # No foreign key: the test suite's flush truncates only the tables Django knows,
            # and a reference would block it. `knowledge.services` deletes vectors with items.
            " item_id bigint PRIMARY KEY,"
            " knowledge_base_id bigint NOT NULL,"
            " embedding vector NOT NULL)"
        )
        cursor.execute(
            f"CREATE INDEX IF NOT EXISTS {TABLE}_kb ON {TABLE} (knowledge_base_id)"
        )


def drop(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {TABLE}")


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0001_initial")]

    operations = [migrations.RunPython(create, drop)]
