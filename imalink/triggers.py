"""Row triggers written once for SQLite and PostgreSQL, for migrations that keep derived rows in step.

A trigger is (name, table, event, when, statements): AFTER event ON table FOR EACH ROW, only WHEN when (a SQL
condition on OLD and NEW, or None), running the statements in order. On PostgreSQL each becomes a plpgsql
function of the same name. On SQLite, a migration that rebuilds a table (most column changes) drops its triggers:
it must create them again.
"""


def changed(columns, vendor: str) -> str:
    """A WHEN condition: any of these columns differs between OLD and NEW (NULL-safe)."""
    op = "IS NOT" if vendor == "sqlite" else "IS DISTINCT FROM"
    return "(" + " OR ".join(f"OLD.{c} {op} NEW.{c}" for c in columns) + ")"


def create_triggers(schema_editor, triggers) -> None:
    vendor = schema_editor.connection.vendor
    for name, table, event, when, statements in triggers:
        condition = f" WHEN {when}" if when else ""
        body = "".join(f"{statement}; " for statement in statements)
        if vendor == "sqlite":
            schema_editor.execute(
                f"CREATE TRIGGER {name} AFTER {event} ON {table} FOR EACH ROW{condition} BEGIN {body}END", params=None
            )
        elif vendor == "postgresql":
            schema_editor.execute(
                f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql "
                f"AS $$ BEGIN {body}RETURN NULL; END $$",
                params=None,
            )
            schema_editor.execute(
                f"CREATE TRIGGER {name} AFTER {event} ON {table} FOR EACH ROW{condition} EXECUTE FUNCTION {name}()",
                params=None,
            )
        else:
            raise NotImplementedError(f"ImaLink's triggers are written for SQLite and PostgreSQL, not {vendor}")


def drop_triggers(schema_editor, triggers) -> None:
    vendor = schema_editor.connection.vendor
    for name, table, *_ in triggers:
        if vendor == "postgresql":
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}", params=None)
            schema_editor.execute(f"DROP FUNCTION IF EXISTS {name}()", params=None)
        else:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}", params=None)


def installed_triggers(connection, prefix: str) -> set[str]:
    """The names of the triggers in this database that start with prefix."""
    if connection.vendor == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE %s"
    else:
        sql = "SELECT tgname FROM pg_trigger WHERE tgname LIKE %s"
    with connection.cursor() as cursor:
        cursor.execute(sql, [prefix + "%"])  # "_" matches any one character: close enough for ImaLink's own prefixes
        return {name for (name,) in cursor.fetchall()}
