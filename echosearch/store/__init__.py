"""The metadata store (SQLAlchemy 2.0): schema, database opening/migration, and queries."""
