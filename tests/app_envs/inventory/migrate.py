"""The inventory's migration: its table and a few rows (run by --setup)."""

import os

import psycopg

with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
    conn.execute("CREATE TABLE IF NOT EXISTS items (id serial PRIMARY KEY, name text NOT NULL)")
    conn.execute("INSERT INTO items (name) SELECT 'item ' || n FROM generate_series(1, 20) AS n")
