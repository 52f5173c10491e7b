"""What Python applications do to MySQL, run through the recorder by tests/python.rs.

    python python_clients.py DRIVER HOST PORT DATABASE

DRIVER is `pymysql` (pure Python) or `mysqldb` (mysqlclient, on MariaDB Connector/C):
two independent protocol implementations. Every check compares what comes back with what
went in; any mismatch or unexpected error exits non-zero with the reason. The last line
on stdout is "ok DRIVER" followed by the SQL texts the Rust side looks for in the capture.
"""

import sys

DRIVER, HOST, PORT, DB = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

if DRIVER == "pymysql":
    import pymysql as db
    from pymysql.constants import CLIENT

    def connect():
        return db.connect(host=HOST, port=PORT, user="root", password="", database=DB,
                          charset="utf8mb4", client_flag=CLIENT.MULTI_STATEMENTS,
                          max_allowed_packet=64 << 20)
elif DRIVER == "mysqldb":
    import MySQLdb as db
    from MySQLdb.constants import CLIENT

    def connect():
        return db.connect(host=HOST, port=PORT, user="root", passwd="", db=DB,
                          charset="utf8mb4", client_flag=CLIENT.MULTI_STATEMENTS)
else:
    sys.exit(f"unknown driver {DRIVER}")


def check(what, got, want):
    if got != want:
        shown = lambda v: repr(v) if len(repr(v)) < 200 else f"{type(v).__name__} of {len(v)}"
        sys.exit(f"{DRIVER}: {what}: got {shown(got)}, want {shown(want)}")


conn = connect()
cur = conn.cursor()
table = f"py_{DRIVER}"
cur.execute(f"DROP TABLE IF EXISTS {table}")
cur.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, s VARCHAR(200) CHARACTER SET utf8mb4,"
            " b LONGBLOB, n INT NULL)")

# Unicode (4-byte characters too), every byte value, NULL.
text = "Grüße, 日本語, emoji 🚀, quote ' and backslash \\"
every_byte = bytes(range(256)) * 4
cur.execute(f"INSERT INTO {table} VALUES (%s, %s, %s, %s)", (1, text, every_byte, None))
cur.execute(f"SELECT s, b, n FROM {table} WHERE id = 1")
check("unicode/binary/NULL row", cur.fetchone(), (text, every_byte, None))

# A 20 MiB value: more than one 16 MiB protocol packet each way.
big = bytes((i * 7) % 251 for i in range(20 << 20))
cur.execute(f"INSERT INTO {table} VALUES (%s, %s, %s, %s)", (2, "big", big, 7))
cur.execute(f"SELECT b, LENGTH(b) FROM {table} WHERE id = 2")
got_big, length = cur.fetchone()
check("20 MiB length", length, len(big))
check("20 MiB value", got_big == big, True)

# Multi-statements: several result sets and an OK in one COM_QUERY.
cur.execute(f"SELECT 1 AS one; UPDATE {table} SET n = 8 WHERE id = 2; SELECT n FROM {table} WHERE id = 2")
sets = [cur.fetchall()]
while cur.nextset():
    sets.append(cur.fetchall())
check("multi-statement results", [list(map(tuple, s)) for s in sets if s], [[(1,)], [(8,)]])

# A server error is the server's error, and the connection stays usable.
try:
    cur.execute("SELECT * FROM no_such_table_here")
    sys.exit(f"{DRIVER}: no error for a missing table")
except db.MySQLError as e:
    check("error code", e.args[0], 1146)
cur.execute("SELECT 'still here'")
check("after the error", cur.fetchone(), ("still here",))

# Transactions, ping.
conn.begin()
cur.execute(f"UPDATE {table} SET n = 9 WHERE id = 2")
conn.rollback()
cur.execute(f"SELECT n FROM {table} WHERE id = 2")
check("rolled back", cur.fetchone(), (8,))
conn.ping()
conn.close()

print(f"ok {DRIVER}\tSELECT 'still here'\tSELECT * FROM no_such_table_here")
