#!/bin/sh
# One-shot: cell, keyspaces and VSchemas in the topology, the shop schema on each
# keyspace, then each unmanaged tablet promoted to primary of its shard.
set -eu
VTCTLD=vtctld:15999
c() { /vt/bin/vtctldclient --server "$VTCTLD" "$@"; }

c AddCellInfo --root /vitess/zone1 --server-address etcd:2379 zone1 2>/dev/null || true
c CreateKeyspace commerce 2>/dev/null || true
c CreateKeyspace customer 2>/dev/null || true

# Wait until all three tablets have registered.
until [ "$(c GetTablets | wc -l)" -ge 3 ]; do sleep 1; done
c TabletExternallyReparented zone1-0000000100
c TabletExternallyReparented zone1-0000000200
c TabletExternallyReparented zone1-0000000300

# The shop's schema, split by keyspace (product → commerce, the rest → customer).
awk 'BEGIN{RS=";\n"} /CREATE TABLE IF NOT EXISTS product /{print $0 ";"}' /schema/schema.sql > /tmp/commerce.sql
awk 'BEGIN{RS=";\n"} /CREATE TABLE/ && !/CREATE TABLE IF NOT EXISTS product /{print $0 ";"}' /schema/schema.sql > /tmp/customer.sql
c ApplySchema --sql-file /tmp/commerce.sql commerce
c ApplySchema --sql-file /tmp/customer.sql customer
c ApplyVSchema --vschema-file /vschema/commerce.json commerce
c ApplyVSchema --vschema-file /vschema/customer.json customer
echo "vitess-init: done"
