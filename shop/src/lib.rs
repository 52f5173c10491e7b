//! The shop: a headless e-commerce API on hyper + mysql_async whose schema is shardable
//! by customer, deterministic seeding, and a scenario driver that runs many virtual
//! users until the database is the bottleneck.
//!
//! Every SQL statement the shop sends lives in [`store`], so what the recorder sees is
//! easy to read in one place, and runs unchanged on MariaDB/MySQL and on Vitess vtgate
//! (unsharded, or sharded by `customer_id`).

pub mod api;
pub mod drive;
pub mod error;
pub mod ids;
pub mod metrics;
pub mod schema;
pub mod seed;
pub mod store;

pub use error::Error;
