//! Throw-away databases for tests: a SQLite file, or a fresh PostgreSQL
//! database on the server `MAXIMIN_TEST_POSTGRES_URL` names (for example
//! `postgres://postgres@127.0.0.1:5432/postgres`), dropped when the test
//! is done with it.

use std::path::Path;

use sqlx::{AnyPool, Executor};

use crate::SqlStore;

/// The server PostgreSQL tests run against, when this run has one. Under
/// `CI=true` a run without one fails rather than skip the PostgreSQL half.
pub fn postgres_server() -> Option<String> {
    match std::env::var("MAXIMIN_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI runs every store test on PostgreSQL too: set MAXIMIN_TEST_POSTGRES_URL (scripts/check does)"
            );
            None
        }
    }
}

/// One database a test owns.
pub struct TestDb {
    url: String,
    /// The server's URL and the database's name, to drop it after.
    postgres: Option<(String, String)>,
}

impl TestDb {
    /// A SQLite database at `path`.
    pub fn sqlite(path: &Path) -> Self {
        TestDb {
            url: format!("sqlite://{}", path.display()),
            postgres: None,
        }
    }

    /// A new, empty PostgreSQL database; `None` when this run has no server.
    pub async fn postgres() -> Option<Self> {
        let server = postgres_server()?;
        sqlx::any::install_default_drivers();
        let name = format!(
            "maximin_t_{}_{:x}",
            std::process::id(),
            crate::sql::rand_u64()
        );
        let admin = AnyPool::connect(&server)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {server}: {e}"));
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create database");
        admin.close().await;
        Some(TestDb {
            url: with_database(&server, &name),
            postgres: Some((server, name)),
        })
    }

    /// The URL `maximin --database-url` takes for it.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    /// A store on it (another process's view when called again).
    pub async fn open(&self) -> SqlStore {
        SqlStore::connect(&self.url).await.expect("store")
    }

    /// Drops a PostgreSQL database (its connections first).
    pub async fn drop_db(self) {
        if let Some((server, name)) = self.postgres {
            if let Ok(admin) = AnyPool::connect(&server).await {
                let _ = admin
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await;
                admin.close().await;
            }
        }
    }
}

/// `server` with its database path replaced by `name`.
fn with_database(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (server, String::new()),
    };
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[after_scheme..]
        .find('/')
        .map(|i| after_scheme + i)
        .unwrap_or(base.len());
    format!("{}/{name}{query}", &base[..host_end])
}

/// Runs each named store test (an `async fn(&TestDb)`) once on SQLite and
/// once on PostgreSQL: `store_tests!(name, other_name);` makes the modules
/// `on_sqlite` and `on_postgres` of `#[tokio::test]`s.
#[macro_export]
macro_rules! store_tests {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let db = $crate::testdb::TestDb::sqlite(&dir.path().join("t.db"));
                    super::$name(&db).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(db) = $crate::testdb::TestDb::postgres().await else {
                        eprintln!("no PostgreSQL (MAXIMIN_TEST_POSTGRES_URL): SQLite only");
                        return;
                    };
                    super::$name(&db).await;
                    db.drop_db().await;
                }
            )*
        }
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_database_is_replaced_in_the_url() {
        assert_eq!(
            super::with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            super::with_database("postgres://u:p@h/db?sslmode=disable", "t2"),
            "postgres://u:p@h/t2?sslmode=disable"
        );
        assert_eq!(
            super::with_database("postgres://h:5432", "t3"),
            "postgres://h:5432/t3"
        );
    }
}
