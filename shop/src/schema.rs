//! The shop's schema: `shop/schema.sql` is the one definition, compiled in here and
//! read by `vitess/` scripts directly.

/// The schema file, verbatim.
pub const SQL: &str = include_str!("../schema.sql");

/// Every table, parents first (seeding order; reverse it to empty them).
pub const TABLES: [&str; 6] = [
    "product",
    "customer",
    "address",
    "cart_item",
    "corder",
    "order_item",
];

/// The `CREATE TABLE` statements, one per table, comments dropped.
pub fn statements() -> Vec<String> {
    let without_comments: String = SQL
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .map(|l| format!("{l}\n"))
        .collect();
    without_comments
        .split(";\n")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_table_has_one_statement() {
        let stmts = super::statements();
        assert_eq!(stmts.len(), super::TABLES.len());
        for (stmt, table) in stmts.iter().zip(super::TABLES) {
            assert!(
                stmt.starts_with(&format!("CREATE TABLE IF NOT EXISTS {table} (")),
                "{stmt}"
            );
        }
    }
}
