"""Seed the RealWorld backend's database for a routebench probe (run by --setup after its migrations):
one author, 3 tags, 20 articles tagged python, a comment on each. DATABASE_URL is routebench's (--postgres)."""

import os

import psycopg2

conn = psycopg2.connect(os.environ["DATABASE_URL"])
with conn, conn.cursor() as cur:
    cur.execute(
        "INSERT INTO users (username, email, salt, hashed_password)"
        " VALUES ('alice', 'alice@example.org', 's', 'x') RETURNING id"
    )
    author = cur.fetchone()[0]
    for tag in ("python", "fastapi", "asyncio"):
        cur.execute("INSERT INTO tags (tag) VALUES (%s)", (tag,))
    for n in range(20):
        cur.execute(
            "INSERT INTO articles (slug, title, description, body, author_id) VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (f"article-{n}", f"Article {n}", "about", "body " * 50, author),
        )
        article = cur.fetchone()[0]
        cur.execute("INSERT INTO articles_to_tags (article_id, tag) VALUES (%s, 'python')", (article,))
        cur.execute("INSERT INTO commentaries (body, author_id, article_id) VALUES ('nice', %s, %s)", (author, article))
