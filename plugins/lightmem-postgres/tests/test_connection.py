"""Connection settings and server faults: typed errors that name the server, never the password."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid

import psycopg
import pytest
from lightmem_hookspecs import BackendContext, IndexRecord
from lightmem_postgres import (
    AuthenticationFailedError,
    ExtensionMissingError,
    SchemaTooNewError,
    ServerUnreachableError,
)
from lightmem_postgres.dsn import ENV_DSN, mask_dsn
from lightmem_postgres.plugin import (
    PgVectorOptions,
    PostgresFTSOptions,
    build_pgvector,
    build_postgres_fts,
)
from psycopg.conninfo import conninfo_to_dict, make_conninfo

SECRET = "s3cret-Pa55word"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _context(tmp_path) -> BackendContext:
    return BackendContext(memory_dir=str(tmp_path), instance="embedding")


def _admin(postgres_dsn):
    return psycopg.connect(postgres_dsn, autocommit=True)


def test_options_repr_masks_the_password():
    for dsn in (
        f"postgresql://alice:{SECRET}@db.example.com:5432/mem",
        f"host=db.example.com user=alice password={SECRET} dbname=mem",
        f"host=db.example.com password='{SECRET}' dbname=mem",
        f"postgresql://db.example.com/mem?user=alice&password={SECRET}&sslmode=require",
    ):
        options = PgVectorOptions(dsn=dsn)
        assert SECRET not in repr(options)
        assert "db.example.com" in repr(options)
        assert SECRET not in (mask_dsn(dsn) or "")


def test_an_empty_dsn_is_refused_without_echoing_secrets():
    with pytest.raises(ValueError, match="dsn: must not be empty"):
        PgVectorOptions(dsn="  ")


def test_unreachable_server_names_the_host_not_the_password(tmp_path):
    port = _free_port()
    options = PgVectorOptions(
        dsn=f"postgresql://alice:{SECRET}@127.0.0.1:{port}/mem", connect_timeout=2
    )
    with pytest.raises(ServerUnreachableError) as info:
        build_pgvector(options, _context(tmp_path))
    message = str(info.value)
    assert f"127.0.0.1:{port}/mem" in message
    assert SECRET not in message
    assert "running" in message  # what to do


def test_the_dsn_comes_from_the_environment(monkeypatch, tmp_path, postgres_dsn, schema):
    monkeypatch.setenv(ENV_DSN, postgres_dsn)
    retriever = build_pgvector(PgVectorOptions(schema=schema), _context(tmp_path))
    try:
        retriever.open(model_name="m", dimension=2)
        retriever.upsert([IndexRecord("a", "a", {}, (1.0, 0.0))])
        assert retriever.count() == 1
    finally:
        retriever.close()


def test_sslmode_is_passed_through(tmp_path):
    """libpq asks a TCP listener for TLS first; one that answers "no TLS" (as a server without
    it does) is refused because sslmode=require was passed through, with the host named."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    seen: list[bytes] = []

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            seen.append(conn.recv(8))  # the SSLRequest packet
            conn.sendall(b"N")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    options = PgVectorOptions(
        dsn=f"postgresql://alice:{SECRET}@127.0.0.1:{port}/mem", sslmode="require"
    )
    assert conninfo_to_dict(options.conninfo())["sslmode"] == "require"
    try:
        with pytest.raises(ServerUnreachableError, match="SSL") as info:
            build_pgvector(options, _context(tmp_path))
    finally:
        thread.join(10)
        listener.close()
    assert seen and seen[0][4:8] == b"\x04\xd2\x16\x2f"  # SSLRequest code 80877103
    assert SECRET not in str(info.value) and f"127.0.0.1:{port}" in str(info.value)


@pytest.fixture
def password_role(postgres_server, postgres_dsn):
    """A role that must log in with a password (scram) over the test server's socket."""
    if postgres_server is None:
        pytest.skip("editing pg_hba.conf needs the pgserver instance the tests start")
    role = f"pw_{uuid.uuid4().hex[:8]}"
    hba = os.path.join(str(postgres_server.pgdata), "pg_hba.conf")
    with open(hba) as f:
        original = f.read()
    with _admin(postgres_dsn) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{SECRET}'")
        with open(hba, "w") as f:
            f.write(f"local all {role} scram-sha-256\n" + original)
        conn.execute("SELECT pg_reload_conf()")
    try:
        yield role
    finally:
        with open(hba, "w") as f:
            f.write(original)
        with _admin(postgres_dsn) as conn:
            conn.execute("SELECT pg_reload_conf()")
            conn.execute(f"DROP OWNED BY {role} CASCADE")
            conn.execute(f"DROP ROLE {role}")


def test_a_wrong_password_is_a_typed_error(password_role, postgres_dsn, schema, tmp_path):
    params = conninfo_to_dict(postgres_dsn)
    good = make_conninfo(**{**params, "user": password_role, "password": SECRET})
    wrong = make_conninfo(**{**params, "user": password_role, "password": SECRET + "x"})
    with pytest.raises(AuthenticationFailedError) as info:
        build_postgres_fts(PostgresFTSOptions(dsn=wrong, schema=schema), _context(tmp_path))
    message = str(info.value)
    assert password_role in message and "password" in message
    assert SECRET not in message
    with _admin(postgres_dsn) as conn:  # the right one works (the role may create schemas)
        database = params.get("dbname", "postgres")
        conn.execute(f"GRANT CREATE ON DATABASE {database} TO {password_role}")
    retriever = build_postgres_fts(PostgresFTSOptions(dsn=good, schema=schema), _context(tmp_path))
    retriever.close()


def test_missing_pgvector_is_a_typed_error(postgres_dsn, tmp_path):
    """A database without the extension, opened by a user who may not create it."""
    name = f"novec_{uuid.uuid4().hex[:8]}"
    with _admin(postgres_dsn) as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN")
        conn.execute(f"CREATE DATABASE {name} OWNER {name}")
    try:
        params = conninfo_to_dict(postgres_dsn)
        dsn = make_conninfo(**{**params, "user": name, "dbname": name})
        retriever = build_pgvector(PgVectorOptions(dsn=dsn), _context(tmp_path))
        try:
            with pytest.raises(ExtensionMissingError) as info:
                retriever.open(model_name="m", dimension=4)
        finally:
            retriever.close()
        message = str(info.value)
        assert "CREATE EXTENSION vector" in message and name in message
    finally:
        with _admin(postgres_dsn) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
            conn.execute(f"DROP ROLE {name}")


def test_a_table_from_a_newer_release_is_refused(postgres_dsn, schema, tmp_path):
    options = PgVectorOptions(dsn=postgres_dsn, schema=schema)
    retriever = build_pgvector(options, _context(tmp_path))
    retriever.open(model_name="m", dimension=4)
    retriever.close()
    with _admin(postgres_dsn) as conn:
        conn.execute(
            f"UPDATE {schema}.lightmem_meta SET value = "
            "jsonb_set(value::jsonb, '{version}', '7')::text "
            "WHERE key = 'pgvector:vectors_embedding'"
        )
    again = build_pgvector(options, _context(tmp_path))
    try:
        with pytest.raises(SchemaTooNewError, match="Upgrade lightmem-postgres"):
            again.open(model_name="m", dimension=4)
    finally:
        again.close()


def test_server_lost_mid_use_then_back(tmp_path, schema, caplog):
    """A server of its own: stopped under an open retriever, then started again."""
    from lightmem_postgres.server import server_folder

    with server_folder() as data:
        _lose_the_server(data, schema, tmp_path, caplog)


def _lose_the_server(data, schema, tmp_path, caplog) -> None:
    from lightmem_postgres.server import dsn, local_server

    server = local_server(data)
    try:
        options = PgVectorOptions(dsn=dsn(server), schema=schema, connect_timeout=2)
        retriever = build_pgvector(options, _context(tmp_path))
        retriever.open(model_name="m", dimension=2)
        retriever.upsert([IndexRecord("a", "a", {}, (1.0, 0.0))])
        server.cleanup()  # stops the server
        caplog.set_level(logging.DEBUG)
        with pytest.raises(ServerUnreachableError, match="nothing of this operation"):
            retriever.upsert([IndexRecord("b", "b", {}, (0.0, 1.0))])
        server = local_server(data)
        assert retriever.count() == 1  # the pool reconnects; "b" was never committed
        retriever.upsert([IndexRecord("b", "b", {}, (0.0, 1.0))])
        assert retriever.count() == 2
        retriever.close()
    finally:
        server.cleanup()
