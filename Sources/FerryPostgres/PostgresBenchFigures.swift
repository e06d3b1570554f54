import Foundation
import PostgresNIO

/// Figures `ferry bench hub --store postgres://…` reads from the database it
/// measured (issue 10): what the hub's tables take on disk, and where the
/// server keeps its data (to find its processes' CPU time in /proc).
extension PostgresHubStore {
    /// Bytes of every table in the current schema, with their indexes and
    /// TOAST (`pg_total_relation_size`); WAL is not counted.
    public func tableBytes() throws -> Int {
        try transact(readOnly: true) { c in
            try c.one(
                """
                SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c
                JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind = 'r'
                """)?.int(0) ?? 0
        }
    }

    /// The server's data directory, when this role may read it (superuser or
    /// `pg_read_all_settings`); nil otherwise.
    public func dataDirectory() -> String? {
        try? transact(readOnly: true) { c in try c.one("SHOW data_directory")?.string(0) }
    }
}
