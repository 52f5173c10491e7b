//! Data access: every statement the shop sends, in one place.
//!
//! The rules that keep it shardable by customer (and so runnable unchanged through
//! Vitess): every query on a customer-owned table filters by `customer_id`; ids come
//! from [`IdGen`] and are written in the SQL; no AUTO_INCREMENT, no cross-customer
//! transactions. The one deliberate exception is the sign-up check "is this email
//! taken?", which must look at every customer: under sharding it becomes the scatter
//! query the report should point at.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mysql_async::prelude::*;
use mysql_async::{
    Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, Transaction, TxOpts, Value,
};
use serde::{Deserialize, Serialize};

use crate::error::{Error, clip};
use crate::ids::IdGen;

/// Page sizes: a client cannot make one request read the whole catalogue.
pub const MAX_LIMIT: u32 = 100;
pub const MAX_OFFSET: u32 = 10_000;
/// Most of one product a cart line holds, however it got there.
pub const MAX_QTY: u32 = 1000;
/// How often a checkout that hit a deadlock is run again before giving up.
const CHECKOUT_ATTEMPTS: u32 = 3;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Product {
    pub product_id: u64,
    pub sku: String,
    pub name: String,
    pub description: String,
    pub category: String,
    pub price_cents: u32,
    pub stock: i32,
    pub created_at: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    pub sku: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub category: String,
    pub price_cents: u32,
    #[serde(default)]
    pub stock: i32,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
    pub price_cents: Option<u32>,
    pub stock: Option<i32>,
}

/// `GET /products` filters.
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub q: Option<String>,
    pub category: Option<String>,
    pub min_price: Option<u32>,
    pub max_price: Option<u32>,
    pub sort: Sort,
    pub limit: u32,
    pub offset: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sort {
    #[default]
    Relevance,
    PriceAsc,
    PriceDesc,
    Newest,
    Name,
}

impl Sort {
    pub fn parse(s: &str) -> Option<Sort> {
        Some(match s {
            "relevance" => Sort::Relevance,
            "price" | "price_asc" => Sort::PriceAsc,
            "-price" | "price_desc" => Sort::PriceDesc,
            "newest" => Sort::Newest,
            "name" => Sort::Name,
            _ => return None,
        })
    }

    fn order_by(self) -> &'static str {
        match self {
            Sort::Relevance => "product_id",
            Sort::PriceAsc => "price_cents, product_id",
            Sort::PriceDesc => "price_cents DESC, product_id",
            Sort::Newest => "created_at DESC, product_id DESC",
            Sort::Name => "name, product_id",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Customer {
    pub customer_id: u64,
    pub email: String,
    pub name: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCustomer {
    pub email: String,
    pub name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerPatch {
    pub email: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Address {
    pub address_id: u64,
    pub customer_id: u64,
    pub line1: String,
    pub line2: String,
    pub city: String,
    pub postcode: String,
    pub country: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAddress {
    pub line1: String,
    #[serde(default)]
    pub line2: String,
    pub city: String,
    pub postcode: String,
    pub country: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CartLine {
    pub product_id: u64,
    pub name: String,
    pub qty: u32,
    pub price_cents: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Cart {
    pub customer_id: u64,
    pub items: Vec<CartLine>,
    pub total_cents: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrderSummary {
    pub order_id: u64,
    pub customer_id: u64,
    pub status: String,
    pub total_cents: u64,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrderLine {
    pub product_id: u64,
    pub qty: u32,
    pub price_cents: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Order {
    #[serde(flatten)]
    pub summary: OrderSummary,
    pub items: Vec<OrderLine>,
}

/// Row counts the driver uses to pick existing products and customers (seeded ids are
/// 1..=N).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counts {
    pub products: u64,
    pub customers: u64,
}

/// The shop's handle on its database: a connection pool and an id generator.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    ids: std::sync::Arc<IdGen>,
}

/// Pool options for a URL: TCP always (mysql_async would otherwise switch to the
/// server's Unix socket when it finds one, going around a recorder or proxy in between),
/// at most `max_connections` connections, no reset on return to the pool.
pub fn opts(url: &str, max_connections: usize) -> Result<Opts, Error> {
    let opts = Opts::from_url(url).map_err(|e| Error::invalid(format!("database URL: {e}")))?;
    let constraints = PoolConstraints::new(0, max_connections.max(1))
        .ok_or_else(|| Error::invalid("pool size must be at least 1"))?;
    Ok(OptsBuilder::from_opts(opts)
        .prefer_socket(false)
        .pool_opts(
            PoolOpts::default()
                .with_constraints(constraints)
                .with_inactive_connection_ttl(Duration::from_secs(60))
                // No COM_RESET_CONNECTION each time a connection goes back to the pool:
                // the shop leaves no session state behind (no SET, no temporary tables,
                // every transaction committed or rolled back), and the reset would be a
                // fifth of all the commands it sends and of every capture.
                .with_reset_connection(false),
        )
        .into())
}

impl Store {
    pub fn new(url: &str, max_connections: usize) -> Result<Self, Error> {
        Ok(Store {
            pool: Pool::new(opts(url, max_connections)?),
            ids: std::sync::Arc::new(IdGen::random()),
        })
    }

    pub async fn close(self) {
        let _ = self.pool.disconnect().await;
    }

    async fn conn(&self) -> Result<Conn, Error> {
        self.pool
            .get_conn()
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))
    }

    pub async fn ping(&self) -> Result<(), Error> {
        let mut conn = self.conn().await?;
        conn.query_drop("SELECT 1").await?;
        Ok(())
    }

    pub async fn counts(&self) -> Result<Counts, Error> {
        let mut conn = self.conn().await?;
        let products: Option<u64> = conn.query_first("SELECT COUNT(*) FROM product").await?;
        let customers: Option<u64> = conn.query_first("SELECT COUNT(*) FROM customer").await?;
        Ok(Counts {
            products: products.unwrap_or(0),
            customers: customers.unwrap_or(0),
        })
    }

    // ---- products -------------------------------------------------------------------

    pub async fn create_product(&self, p: NewProduct) -> Result<Product, Error> {
        validate_text("sku", &p.sku, 1, 32)?;
        validate_text("name", &p.name, 1, 200)?;
        validate_text("category", &p.category, 1, 64)?;
        validate_text("description", &p.description, 0, 10_000)?;
        if p.stock < 0 {
            return Err(Error::invalid("stock must not be negative"));
        }
        let product = Product {
            product_id: self.ids.next(),
            sku: p.sku,
            name: p.name,
            description: p.description,
            category: p.category,
            price_cents: p.price_cents,
            stock: p.stock,
            created_at: now_utc(),
        };
        let mut conn = self.conn().await?;
        let r = conn
            .exec_drop(
                "INSERT INTO product (product_id, sku, name, description, category, price_cents, stock, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    product.product_id,
                    &product.sku,
                    &product.name,
                    &product.description,
                    &product.category,
                    product.price_cents,
                    product.stock,
                    &product.created_at,
                ),
            )
            .await;
        match r {
            Err(mysql_async::Error::Server(e)) if e.code == 1062 => Err(Error::Conflict(format!(
                "a product with sku {:?} exists",
                clip(&product.sku)
            ))),
            r => {
                r?;
                Ok(product)
            }
        }
    }

    pub async fn product(&self, id: u64) -> Result<Product, Error> {
        let mut conn = self.conn().await?;
        let row: Option<mysql_async::Row> = conn
            .exec_first(
                "SELECT product_id, sku, name, description, category, price_cents, stock, created_at \
                 FROM product WHERE product_id = ?",
                (id,),
            )
            .await?;
        row.map(product_from_row)
            .transpose()?
            .ok_or_else(|| Error::not_found(format!("no product {id}")))
    }

    pub async fn update_product(&self, id: u64, patch: ProductPatch) -> Result<Product, Error> {
        let mut p = self.product(id).await?;
        if let Some(name) = patch.name {
            validate_text("name", &name, 1, 200)?;
            p.name = name;
        }
        if let Some(d) = patch.description {
            validate_text("description", &d, 0, 10_000)?;
            p.description = d;
        }
        if let Some(c) = patch.category {
            validate_text("category", &c, 1, 64)?;
            p.category = c;
        }
        if let Some(price) = patch.price_cents {
            p.price_cents = price;
        }
        if let Some(stock) = patch.stock {
            if stock < 0 {
                return Err(Error::invalid("stock must not be negative"));
            }
            p.stock = stock;
        }
        let mut conn = self.conn().await?;
        conn.exec_drop(
            "UPDATE product SET name = ?, description = ?, category = ?, price_cents = ?, stock = ? \
             WHERE product_id = ?",
            (&p.name, &p.description, &p.category, p.price_cents, p.stock, id),
        )
        .await?;
        Ok(p)
    }

    pub async fn delete_product(&self, id: u64) -> Result<(), Error> {
        let mut conn = self.conn().await?;
        conn.exec_drop("DELETE FROM product WHERE product_id = ?", (id,))
            .await?;
        if conn.affected_rows() == 0 {
            return Err(Error::not_found(format!("no product {id}")));
        }
        Ok(())
    }

    pub async fn search(&self, s: &Search) -> Result<Vec<Product>, Error> {
        if s.limit == 0 || s.limit > MAX_LIMIT {
            return Err(Error::invalid(format!("limit must be 1..={MAX_LIMIT}")));
        }
        if s.offset > MAX_OFFSET {
            return Err(Error::invalid(format!(
                "offset must be at most {MAX_OFFSET}"
            )));
        }
        if let (Some(lo), Some(hi)) = (s.min_price, s.max_price)
            && lo > hi
        {
            return Err(Error::invalid("min_price is above max_price"));
        }
        let mut sql = String::from(
            "SELECT product_id, sku, name, description, category, price_cents, stock, created_at FROM product",
        );
        let mut conds: Vec<&str> = Vec::new();
        let mut params: Vec<Value> = Vec::new();
        if let Some(q) = &s.q {
            validate_text("q", q, 1, 100)?;
            conds.push("name LIKE ?");
            params.push(Value::from(format!("%{}%", escape_like(q))));
        }
        if let Some(c) = &s.category {
            conds.push("category = ?");
            params.push(Value::from(c.as_str()));
        }
        if let Some(lo) = s.min_price {
            conds.push("price_cents >= ?");
            params.push(Value::from(lo));
        }
        if let Some(hi) = s.max_price {
            conds.push("price_cents <= ?");
            params.push(Value::from(hi));
        }
        if !conds.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conds.join(" AND "));
        }
        // LIMIT/OFFSET are validated integers written into the text: placeholders there
        // are not accepted by every proxy.
        sql.push_str(&format!(
            " ORDER BY {} LIMIT {} OFFSET {}",
            s.sort.order_by(),
            s.limit,
            s.offset
        ));
        let mut conn = self.conn().await?;
        let rows: Vec<mysql_async::Row> = if params.is_empty() {
            conn.query(sql).await?
        } else {
            conn.exec(sql, params).await?
        };
        rows.into_iter().map(product_from_row).collect()
    }

    // ---- customers ------------------------------------------------------------------

    pub async fn create_customer(&self, c: NewCustomer) -> Result<Customer, Error> {
        validate_email(&c.email)?;
        validate_text("name", &c.name, 1, 200)?;
        let mut conn = self.conn().await?;
        // Not a UNIQUE key: that would only be unique per shard once customers are
        // sharded. This lookup touches every shard: the scatter query sharding costs.
        let taken: Option<u64> = conn
            .exec_first(
                "SELECT customer_id FROM customer WHERE email = ? LIMIT 1",
                (&c.email,),
            )
            .await?;
        if taken.is_some() {
            return Err(Error::Conflict(format!(
                "email {} is taken",
                clip(&c.email)
            )));
        }
        let customer = Customer {
            customer_id: self.ids.next(),
            email: c.email,
            name: c.name,
            created_at: now_utc(),
        };
        conn.exec_drop(
            "INSERT INTO customer (customer_id, email, name, created_at) VALUES (?, ?, ?, ?)",
            (
                customer.customer_id,
                &customer.email,
                &customer.name,
                &customer.created_at,
            ),
        )
        .await?;
        Ok(customer)
    }

    pub async fn customer(&self, id: u64) -> Result<Customer, Error> {
        let mut conn = self.conn().await?;
        customer_in(&mut conn, id).await
    }

    pub async fn update_customer(&self, id: u64, patch: CustomerPatch) -> Result<Customer, Error> {
        let mut conn = self.conn().await?;
        let mut c = customer_in(&mut conn, id).await?;
        if let Some(name) = patch.name {
            validate_text("name", &name, 1, 200)?;
            c.name = name;
        }
        if let Some(email) = patch.email
            && email != c.email
        {
            validate_email(&email)?;
            let taken: Option<u64> = conn
                .exec_first(
                    "SELECT customer_id FROM customer WHERE email = ? LIMIT 1",
                    (&email,),
                )
                .await?;
            if taken.is_some() {
                return Err(Error::Conflict(format!("email {} is taken", clip(&email))));
            }
            c.email = email;
        }
        conn.exec_drop(
            "UPDATE customer SET email = ?, name = ? WHERE customer_id = ?",
            (&c.email, &c.name, id),
        )
        .await?;
        Ok(c)
    }

    /// Deletes a customer and everything they own, in one transaction (one shard).
    pub async fn delete_customer(&self, id: u64) -> Result<(), Error> {
        let mut conn = self.conn().await?;
        let mut tx = conn.start_transaction(TxOpts::default()).await?;
        for table in ["order_item", "corder", "cart_item", "address"] {
            tx.exec_drop(format!("DELETE FROM {table} WHERE customer_id = ?"), (id,))
                .await?;
        }
        tx.exec_drop("DELETE FROM customer WHERE customer_id = ?", (id,))
            .await?;
        if tx.affected_rows() == 0 {
            tx.rollback().await?;
            return Err(Error::not_found(format!("no customer {id}")));
        }
        tx.commit().await?;
        Ok(())
    }

    // ---- addresses ------------------------------------------------------------------

    pub async fn add_address(&self, customer_id: u64, a: NewAddress) -> Result<Address, Error> {
        validate_text("line1", &a.line1, 1, 200)?;
        validate_text("line2", &a.line2, 0, 200)?;
        validate_text("city", &a.city, 1, 100)?;
        validate_text("postcode", &a.postcode, 1, 20)?;
        if a.country.len() != 2 || !a.country.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(Error::invalid(
                "country must be two capital letters (ISO 3166)",
            ));
        }
        let mut conn = self.conn().await?;
        customer_exists(&mut conn, customer_id).await?;
        let address = Address {
            address_id: self.ids.next(),
            customer_id,
            line1: a.line1,
            line2: a.line2,
            city: a.city,
            postcode: a.postcode,
            country: a.country,
            created_at: now_utc(),
        };
        conn.exec_drop(
            "INSERT INTO address (address_id, customer_id, line1, line2, city, postcode, country, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                address.address_id,
                customer_id,
                &address.line1,
                &address.line2,
                &address.city,
                &address.postcode,
                &address.country,
                &address.created_at,
            ),
        )
        .await?;
        Ok(address)
    }

    pub async fn addresses(&self, customer_id: u64) -> Result<Vec<Address>, Error> {
        let mut conn = self.conn().await?;
        customer_exists(&mut conn, customer_id).await?;
        let rows: Vec<mysql_async::Row> = conn
            .exec(
                "SELECT address_id, customer_id, line1, line2, city, postcode, country, created_at \
                 FROM address WHERE customer_id = ? ORDER BY address_id",
                (customer_id,),
            )
            .await?;
        rows.into_iter()
            .map(|mut r| {
                Ok(Address {
                    address_id: take(&mut r, 0)?,
                    customer_id: take(&mut r, 1)?,
                    line1: take(&mut r, 2)?,
                    line2: take(&mut r, 3)?,
                    city: take(&mut r, 4)?,
                    postcode: take(&mut r, 5)?,
                    country: take(&mut r, 6)?,
                    created_at: take_datetime(&mut r, 7)?,
                })
            })
            .collect()
    }

    pub async fn delete_address(&self, customer_id: u64, address_id: u64) -> Result<(), Error> {
        let mut conn = self.conn().await?;
        conn.exec_drop(
            "DELETE FROM address WHERE customer_id = ? AND address_id = ?",
            (customer_id, address_id),
        )
        .await?;
        if conn.affected_rows() == 0 {
            return Err(Error::not_found(format!(
                "no address {address_id} for customer {customer_id}"
            )));
        }
        Ok(())
    }

    // ---- cart -----------------------------------------------------------------------

    pub async fn cart(&self, customer_id: u64) -> Result<Cart, Error> {
        let mut conn = self.conn().await?;
        customer_exists(&mut conn, customer_id).await?;
        cart_in(&mut conn, customer_id).await
    }

    /// Adds `qty` of a product on top of what the cart already holds. The sum stays
    /// within 1..=[`MAX_QTY`] too: a cart line past it is a conflict with the cart's
    /// state (409), as short stock is, since the same request is fine on another cart.
    pub async fn add_to_cart(
        &self,
        customer_id: u64,
        product_id: u64,
        qty: u32,
    ) -> Result<Cart, Error> {
        validate_qty(qty)?;
        let mut conn = self.conn().await?;
        customer_exists(&mut conn, customer_id).await?;
        let exists: Option<u8> = conn
            .exec_first("SELECT 1 FROM product WHERE product_id = ?", (product_id,))
            .await?;
        if exists.is_none() {
            return Err(Error::not_found(format!("no product {product_id}")));
        }
        if add_within_limit(&mut conn, customer_id, product_id, qty).await? {
            return cart_in(&mut conn, customer_id).await;
        }
        let inserted = conn
            .exec_drop(
                "INSERT INTO cart_item (customer_id, product_id, qty, added_at) VALUES (?, ?, ?, ?)",
                (customer_id, product_id, qty, now_utc()),
            )
            .await;
        match inserted {
            Ok(()) => return cart_in(&mut conn, customer_id).await,
            // The line exists: over the limit, or a concurrent first add won the
            // insert, in which case the guarded add decides again.
            Err(mysql_async::Error::Server(e)) if e.code == 1062 => {}
            Err(e) => return Err(e.into()),
        }
        if add_within_limit(&mut conn, customer_id, product_id, qty).await? {
            return cart_in(&mut conn, customer_id).await;
        }
        let held: Option<u32> = conn
            .exec_first(
                "SELECT qty FROM cart_item WHERE customer_id = ? AND product_id = ?",
                (customer_id, product_id),
            )
            .await?;
        Err(Error::Conflict(format!(
            "the cart of customer {customer_id} holds {} of product {product_id}: {qty} more \
             would pass the limit of {MAX_QTY} per product",
            held.unwrap_or(0)
        )))
    }

    pub async fn set_cart_qty(
        &self,
        customer_id: u64,
        product_id: u64,
        qty: u32,
    ) -> Result<Cart, Error> {
        if qty == 0 {
            return self.remove_from_cart(customer_id, product_id).await;
        }
        validate_qty(qty)?;
        let mut conn = self.conn().await?;
        // Read first: an UPDATE that changes nothing reports 0 affected rows, which
        // would read as "not in the cart".
        let current: Option<u32> = conn
            .exec_first(
                "SELECT qty FROM cart_item WHERE customer_id = ? AND product_id = ?",
                (customer_id, product_id),
            )
            .await?;
        if current.is_none() {
            return Err(Error::not_found(format!(
                "product {product_id} is not in the cart of customer {customer_id}"
            )));
        }
        conn.exec_drop(
            "UPDATE cart_item SET qty = ? WHERE customer_id = ? AND product_id = ?",
            (qty, customer_id, product_id),
        )
        .await?;
        cart_in(&mut conn, customer_id).await
    }

    pub async fn remove_from_cart(&self, customer_id: u64, product_id: u64) -> Result<Cart, Error> {
        let mut conn = self.conn().await?;
        conn.exec_drop(
            "DELETE FROM cart_item WHERE customer_id = ? AND product_id = ?",
            (customer_id, product_id),
        )
        .await?;
        if conn.affected_rows() == 0 {
            return Err(Error::not_found(format!(
                "product {product_id} is not in the cart of customer {customer_id}"
            )));
        }
        cart_in(&mut conn, customer_id).await
    }

    // ---- checkout and orders --------------------------------------------------------

    /// Turns the cart into an order in one transaction: stock is checked and taken with
    /// a guarded decrement, so two checkouts of the last item cannot both win, and any
    /// failure rolls everything back. Deadlocks are retried.
    pub async fn checkout(&self, customer_id: u64) -> Result<Order, Error> {
        let mut attempt = 1;
        loop {
            match self.checkout_once(customer_id).await {
                Err(e) if e.is_retryable() && attempt < CHECKOUT_ATTEMPTS => attempt += 1,
                r => return r,
            }
        }
    }

    async fn checkout_once(&self, customer_id: u64) -> Result<Order, Error> {
        let mut conn = self.conn().await?;
        customer_exists(&mut conn, customer_id).await?;
        let mut tx = conn.start_transaction(TxOpts::default()).await?;
        // Product order: every checkout takes row locks in the same order (no deadlocks
        // between two checkouts).
        let lines: Vec<(u64, u32)> = tx
            .exec(
                "SELECT product_id, qty FROM cart_item WHERE customer_id = ? ORDER BY product_id FOR UPDATE",
                (customer_id,),
            )
            .await?;
        if lines.is_empty() {
            tx.rollback().await?;
            return Err(Error::Conflict(format!(
                "the cart of customer {customer_id} is empty"
            )));
        }
        let items = match take_stock(&mut tx, lines).await {
            Ok(items) => items,
            Err(e @ Error::Conflict(_)) => {
                tx.rollback().await?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let total = items
            .iter()
            .map(|i| u64::from(i.price_cents) * u64::from(i.qty))
            .sum();
        let summary = OrderSummary {
            order_id: self.ids.next(),
            customer_id,
            status: "placed".into(),
            total_cents: total,
            created_at: now_utc(),
        };
        record_order(&mut tx, &summary, &items).await?;
        tx.commit().await?;
        Ok(Order { summary, items })
    }

    pub async fn orders(&self, customer_id: u64, limit: u32) -> Result<Vec<OrderSummary>, Error> {
        if limit == 0 || limit > MAX_LIMIT {
            return Err(Error::invalid(format!("limit must be 1..={MAX_LIMIT}")));
        }
        let mut conn = self.conn().await?;
        customer_exists(&mut conn, customer_id).await?;
        let rows: Vec<mysql_async::Row> = conn
            .exec(
                format!(
                    "SELECT order_id, customer_id, status, total_cents, created_at FROM corder \
                     WHERE customer_id = ? ORDER BY created_at DESC, order_id DESC LIMIT {limit}"
                ),
                (customer_id,),
            )
            .await?;
        rows.into_iter().map(order_from_row).collect()
    }

    pub async fn order(&self, customer_id: u64, order_id: u64) -> Result<Order, Error> {
        let mut conn = self.conn().await?;
        let row: Option<mysql_async::Row> = conn
            .exec_first(
                "SELECT order_id, customer_id, status, total_cents, created_at FROM corder \
                 WHERE customer_id = ? AND order_id = ?",
                (customer_id, order_id),
            )
            .await?;
        let summary = row.map(order_from_row).transpose()?.ok_or_else(|| {
            Error::not_found(format!("no order {order_id} for customer {customer_id}"))
        })?;
        let items: Vec<(u64, u32, u32)> = conn
            .exec(
                "SELECT product_id, qty, price_cents FROM order_item \
                 WHERE customer_id = ? AND order_id = ? ORDER BY product_id",
                (customer_id, order_id),
            )
            .await?;
        Ok(Order {
            summary,
            items: items
                .into_iter()
                .map(|(product_id, qty, price_cents)| OrderLine {
                    product_id,
                    qty,
                    price_cents,
                })
                .collect(),
        })
    }
}

/// Takes each line's quantity from stock with a guarded decrement and prices it. A
/// Conflict (short stock, a product gone) leaves the rollback to the caller, who owns
/// the transaction.
async fn take_stock(
    tx: &mut Transaction<'_>,
    lines: Vec<(u64, u32)>,
) -> Result<Vec<OrderLine>, Error> {
    let mut items = Vec::with_capacity(lines.len());
    for (product_id, qty) in lines {
        tx.exec_drop(
            "UPDATE product SET stock = stock - ? WHERE product_id = ? AND stock >= ?",
            (qty, product_id, qty),
        )
        .await?;
        if tx.affected_rows() == 0 {
            return Err(Error::Conflict(format!(
                "not enough stock of product {product_id} for {qty}"
            )));
        }
        let price: Option<u32> = tx
            .exec_first(
                "SELECT price_cents FROM product WHERE product_id = ?",
                (product_id,),
            )
            .await?;
        let Some(price) = price else {
            return Err(Error::Conflict(format!("product {product_id} was removed")));
        };
        items.push(OrderLine {
            product_id,
            qty,
            price_cents: price,
        });
    }
    Ok(items)
}

/// Writes the order, its items, and empties the cart it came from.
async fn record_order(
    tx: &mut Transaction<'_>,
    summary: &OrderSummary,
    items: &[OrderLine],
) -> Result<(), Error> {
    let customer_id = summary.customer_id;
    tx.exec_drop(
        "INSERT INTO corder (order_id, customer_id, status, total_cents, created_at) VALUES (?, ?, ?, ?, ?)",
        (
            summary.order_id,
            customer_id,
            &summary.status,
            summary.total_cents,
            &summary.created_at,
        ),
    )
    .await?;
    for item in items {
        tx.exec_drop(
            "INSERT INTO order_item (order_id, customer_id, product_id, qty, price_cents) VALUES (?, ?, ?, ?, ?)",
            (summary.order_id, customer_id, item.product_id, item.qty, item.price_cents),
        )
        .await?;
    }
    tx.exec_drop(
        "DELETE FROM cart_item WHERE customer_id = ?",
        (customer_id,),
    )
    .await?;
    Ok(())
}

async fn customer_in(conn: &mut Conn, id: u64) -> Result<Customer, Error> {
    let row: Option<mysql_async::Row> = conn
        .exec_first(
            "SELECT customer_id, email, name, created_at FROM customer WHERE customer_id = ?",
            (id,),
        )
        .await?;
    let mut r = row.ok_or_else(|| Error::not_found(format!("no customer {id}")))?;
    Ok(Customer {
        customer_id: take(&mut r, 0)?,
        email: take(&mut r, 1)?,
        name: take(&mut r, 2)?,
        created_at: take_datetime(&mut r, 3)?,
    })
}

async fn customer_exists(conn: &mut Conn, id: u64) -> Result<(), Error> {
    let found: Option<u8> = conn
        .exec_first("SELECT 1 FROM customer WHERE customer_id = ?", (id,))
        .await?;
    found
        .map(|_| ())
        .ok_or_else(|| Error::not_found(format!("no customer {id}")))
}

async fn cart_in(conn: &mut Conn, customer_id: u64) -> Result<Cart, Error> {
    let rows: Vec<(u64, String, u32, u32)> = conn
        .exec(
            "SELECT c.product_id, p.name, c.qty, p.price_cents FROM cart_item c \
             JOIN product p ON p.product_id = c.product_id \
             WHERE c.customer_id = ? ORDER BY c.product_id",
            (customer_id,),
        )
        .await?;
    let items: Vec<CartLine> = rows
        .into_iter()
        .map(|(product_id, name, qty, price_cents)| CartLine {
            product_id,
            name,
            qty,
            price_cents,
        })
        .collect();
    let total_cents = items
        .iter()
        .map(|i| u64::from(i.qty) * u64::from(i.price_cents))
        .sum();
    Ok(Cart {
        customer_id,
        items,
        total_cents,
    })
}

fn product_from_row(mut r: mysql_async::Row) -> Result<Product, Error> {
    Ok(Product {
        product_id: take(&mut r, 0)?,
        sku: take(&mut r, 1)?,
        name: take(&mut r, 2)?,
        description: take(&mut r, 3)?,
        category: take(&mut r, 4)?,
        price_cents: take(&mut r, 5)?,
        stock: take(&mut r, 6)?,
        created_at: take_datetime(&mut r, 7)?,
    })
}

fn order_from_row(mut r: mysql_async::Row) -> Result<OrderSummary, Error> {
    Ok(OrderSummary {
        order_id: take(&mut r, 0)?,
        customer_id: take(&mut r, 1)?,
        status: take(&mut r, 2)?,
        total_cents: take(&mut r, 3)?,
        created_at: take_datetime(&mut r, 4)?,
    })
}

/// Column `i` as `T`; a type mismatch is a schema problem, reported, not a panic.
fn take<T: FromValue>(r: &mut mysql_async::Row, i: usize) -> Result<T, Error> {
    r.take_opt::<T, usize>(i)
        .ok_or_else(|| Error::Internal(format!("column {i} missing")))?
        .map_err(|e| Error::Internal(format!("column {i}: {e}")))
}

/// A DATETIME column as "YYYY-MM-DD HH:MM:SS.ffffff" (binary and text protocol alike).
fn take_datetime(r: &mut mysql_async::Row, i: usize) -> Result<String, Error> {
    match r.take::<Value, usize>(i) {
        Some(Value::Date(y, mo, d, h, mi, s, us)) => Ok(format!(
            "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}"
        )),
        Some(Value::Bytes(b)) => Ok(String::from_utf8_lossy(&b).into_owned()),
        other => Err(Error::Internal(format!(
            "column {i}: not a datetime: {other:?}"
        ))),
    }
}

/// The current UTC time as a DATETIME(6) literal: written by the shop, not `NOW()`, so a
/// statement means the same thing whenever it is replayed.
pub fn now_utc() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    datetime(d.as_secs(), d.subsec_micros())
}

/// Seconds since the Unix epoch as "YYYY-MM-DD HH:MM:SS.ffffff" (UTC).
pub fn datetime(secs: u64, micros: u32) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{micros:06}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day): Howard Hinnant's civil_from_days.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

fn validate_text(field: &str, value: &str, min: usize, max: usize) -> Result<(), Error> {
    let n = value.chars().count();
    if n < min || n > max {
        return Err(Error::invalid(if min > 0 && n == 0 {
            format!("{field} must not be empty")
        } else {
            format!("{field} must be {min}..={max} characters, not {n}")
        }));
    }
    Ok(())
}

fn validate_email(email: &str) -> Result<(), Error> {
    validate_text("email", email, 3, 255)?;
    match email.split_once('@') {
        Some((local, domain)) if !local.is_empty() && domain.contains('.') => Ok(()),
        _ => Err(Error::invalid(format!(
            "{:?} is not an email address",
            clip(email)
        ))),
    }
}

fn validate_qty(qty: u32) -> Result<(), Error> {
    if qty == 0 || qty > MAX_QTY {
        return Err(Error::invalid(format!("qty must be 1..={MAX_QTY}")));
    }
    Ok(())
}

/// Adds `qty` to an existing cart line if the sum stays within [`MAX_QTY`], in one
/// guarded statement so that concurrent adds cannot together pass it. False when the
/// line does not exist or the sum would be too much. (`qty` is at least 1, so a
/// matching row always changes and counts as affected.)
async fn add_within_limit(
    conn: &mut Conn,
    customer_id: u64,
    product_id: u64,
    qty: u32,
) -> Result<bool, Error> {
    conn.exec_drop(
        "UPDATE cart_item SET qty = qty + ? \
         WHERE customer_id = ? AND product_id = ? AND qty + ? <= ?",
        (qty, customer_id, product_id, qty, MAX_QTY),
    )
    .await?;
    Ok(conn.affected_rows() == 1)
}

/// `%`, `_` and `\` match literally in a search term.
fn escape_like(q: &str) -> String {
    let mut out = String::with_capacity(q.len());
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_are_utc_calendar_dates() {
        assert_eq!(datetime(0, 0), "1970-01-01 00:00:00.000000");
        assert_eq!(datetime(1_709_164_800, 5), "2024-02-29 00:00:00.000005");
        assert_eq!(
            datetime(1_735_689_599, 999_999),
            "2024-12-31 23:59:59.999999"
        );
    }

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(escape_like("50%_off\\"), "50\\%\\_off\\\\");
    }
}
